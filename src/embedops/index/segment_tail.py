"""The small exact segments of a segmented index, searched together (issue 19).

A size-tiered layout keeps one large segment and a few small recent ones; the small ones are
built exact (flat). Searching each through its own index costs a call per segment per query;
``ExactTail`` copies their live rows (tombstones left out: a segmented index never changes)
into one matrix when the index is made, so one matrix product over the whole batch of queries
scores them all. The copy is bounded by ``segments.TAIL_ROWS`` per segment and counted in
``memory_bytes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from embedops.index.protocol import F32, IdArray

if TYPE_CHECKING:
    from embedops.index.segments import Segment


@dataclass(frozen=True)
class ExactTail:
    """The live rows of the small exact segments in one matrix (as the flat indexes hold
    them: normalized for cosine), their global ids and, for l2, their squared norms."""

    vectors: F32
    ids: IdArray
    metric: str
    norms2: F32 | None = None

    @classmethod
    def of(cls, segs: Sequence[Segment], dim: int, metric: str) -> ExactTail | None:
        rows, ids = [], []
        for seg in segs:
            local = seg.index.ids()
            keep = np.ones(len(local), dtype=bool)
            if len(seg.dead):
                keep &= ~np.isin(local, seg.dead)
            faiss_index = seg.index._index  # type: ignore[attr-defined]  # a FlatIndex
            rows.append(faiss_index.reconstruct_n(0, len(local))[keep])
            ids.append(local[keep] + seg.offset)
        if not rows or not sum(len(r) for r in rows):
            return None
        vectors = np.ascontiguousarray(np.concatenate(rows), np.float32).reshape(-1, dim)
        norms2 = np.einsum("ij,ij->i", vectors, vectors) if metric == "l2" else None
        return cls(vectors, np.concatenate(ids).astype(np.int64), metric, norms2)

    @property
    def nbytes(self) -> int:
        extra = 0 if self.norms2 is None else self.norms2.nbytes
        return int(self.vectors.nbytes + self.ids.nbytes + extra)

    def search(self, q: F32, scale: Any, k: int) -> tuple[IdArray, F32]:
        """The best ``min(k, rows)`` (global ids, scores) of each query, unordered (the
        merge orders them); ``scale`` as ``check_queries`` gives it (cosine)."""
        scores = q @ self.vectors.T
        if self.norms2 is not None:  # -|q - x|^2 = 2 q.x - |q|^2 - |x|^2
            q2 = np.einsum("ij,ij->i", q, q)[:, None]
            scores = 2.0 * scores - q2 - self.norms2[None, :]
        elif scale is not None:
            scores *= scale
        if scores.shape[1] <= k:
            return np.broadcast_to(self.ids, scores.shape), scores
        cols = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        return self.ids[cols], np.take_along_axis(scores, cols, axis=1)
