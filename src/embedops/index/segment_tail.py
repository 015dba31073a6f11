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
from typing import TYPE_CHECKING, Any

import numpy as np

from embedops.index.protocol import F32, IdArray

if TYPE_CHECKING:
    from embedops.index.segments import Segment


class ExactTail:
    """The live rows of the small exact segments in one FAISS flat index (as the segments hold
    them: normalized for cosine) and their global ids. FAISS scores one query with SIMD and a
    batch with one BLAS product, and keeps the top ``k`` in C."""

    def __init__(self, vectors: F32, ids: IdArray, metric: str) -> None:
        import faiss

        self.ids, self.metric, self.rows = ids, metric, len(ids)
        dim = vectors.shape[1]
        self._index: Any = faiss.IndexFlatL2(dim) if metric == "l2" else faiss.IndexFlatIP(dim)
        self._index.add(vectors)

    @classmethod
    def of(cls, segs: Sequence[Segment], dim: int, metric: str) -> ExactTail | None:
        """The tail of ``segs`` (flat segments; their tombstoned rows left out), or None."""
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
        return cls(vectors, np.concatenate(ids).astype(np.int64), metric)

    @property
    def nbytes(self) -> int:
        """RAM of the copied rows and their ids."""
        return int(self.rows * self._index.d * 4 + self.ids.nbytes)

    def search(self, q: F32, scale: Any, k: int) -> tuple[IdArray, F32]:
        """The best ``min(k, rows)`` (global ids, scores) of each query, best first;
        ``scale`` as ``check_queries`` gives it (cosine: one over each query's norm)."""
        from faiss import swig_ptr

        m, k = len(q), min(k, self.rows)
        scores = np.empty((m, k), dtype=np.float32)
        labels = np.empty((m, k), dtype=np.int64)
        self._index.search_c(m, swig_ptr(q), k, swig_ptr(scores), swig_ptr(labels))
        if self.metric == "l2":
            np.negative(scores, out=scores)
        elif scale is not None:
            scores *= scale
        return self.ids[labels], scores
