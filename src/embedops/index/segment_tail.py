"""How the segments of a segmented index are searched: one FAISS call per *lane* (issue 19).

A lane is one FAISS search that writes ``k`` columns of a shared result buffer: a graph
segment (HNSW) searched below its wrapper, its ``ef_search`` and its tombstones (a bitmap
selector: FAISS walks past them and returns ``k`` live results) in one ``SearchParameters``;
or the *tail*, the small exact segments a size-tiered layout keeps, whose live rows are copied
into one FAISS flat index when the index is made (one SIMD pass for a query, one BLAS product
for a batch, instead of a call per segment). Labels become global ids by adding the lane's
``base`` (a segment's offset; the tail's ids are global already), and only for the ``k``
winners of each query (``merge``): per call that is one small buffer, one sort and a few
index operations, whatever the number of segments. The copy of the tail is bounded by
``segments.TAIL_ROWS`` per segment and counted in ``memory_bytes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from embedops.index.protocol import F32, IdArray
from embedops.index.scoring import pad

if TYPE_CHECKING:
    from embedops.index.segments import Segment

#: FAISS's score for a missing result (label -1) after ``to_scores``: the lowest float32
MISSING = np.finfo(np.float32).min


@dataclass(frozen=True)
class Lane:
    """One FAISS search per call: ``search`` is the index's ``search_c``, ``params`` its
    per-call ``SearchParameters`` (or None), ``base`` is added to its labels."""

    search: Any
    params: Any
    base: int


class GraphLane:
    """What a lane of one HNSW segment needs beyond its knobs, made once per index: the FAISS
    graph and a selector of its live labels (None when nothing is dead). Only a graph whose
    labels are its local ids (segments are built so) qualifies: ``of`` gives None otherwise."""

    def __init__(self, seg: Segment, faiss_index: Any, live: np.ndarray | None) -> None:
        import faiss

        self.faiss_index, self.base = faiss_index, seg.offset
        self.default_ef = int(faiss_index.hnsw.efSearch)
        self._bits = None if live is None else np.packbits(live, bitorder="little")
        self.selector = None if self._bits is None else \
            faiss.IDSelectorBitmap(len(self._bits), faiss.swig_ptr(self._bits))

    @classmethod
    def of(cls, seg: Segment) -> GraphLane | None:
        """The graph lane of ``seg``, or None (another backend, or labels not local ids)."""
        from embedops.index.hnsw import HNSWIndex

        index = seg.index
        if not isinstance(index, HNSWIndex):
            return None
        labels, dead = index._labels, index._dead
        if not np.array_equal(labels, np.arange(len(labels))) or \
                len(labels) != index._index.ntotal:
            return None
        live = ~dead
        gone = seg.dead[seg.dead < len(live)]
        live[gone] = False
        return cls(seg, index._index, None if live.all() else live)

    @property
    def nbytes(self) -> int:
        """RAM of the live bitmap."""
        return 0 if self._bits is None else int(self._bits.nbytes)

    def lane(self, knobs: dict[str, Any] | None) -> Lane:
        """The lane for validated ``knobs`` (``ef_search``, else the graph's own)."""
        ef = (knobs or {}).get("ef_search")
        if ef is None and self.selector is None:
            return Lane(self.faiss_index.search_c, None, self.base)
        import faiss

        params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
        params.efSearch = int(ef if ef is not None else self.default_ef)
        if self.selector is not None:
            params.sel = self.selector  # kept alive by self
        return Lane(self.faiss_index.search_c, params, self.base)


class CellSkip:
    """The tombstones of one cell segment (ivf, ivfpq, rabitq) as a FAISS selector of its live
    labels, made once per index: the cell scan skips them, so the segment is asked for ``k``
    results, not ``k`` plus the tombstones expected among them (a rescoring backend's depth
    multiplies that fetch: the candidates it re-ranks are then all live). Only an index whose
    labels are its local ids ``0..n-1`` (segments are built so) qualifies."""

    def __init__(self, live: np.ndarray) -> None:
        import faiss

        self._bits = np.packbits(live, bitorder="little")
        self.selector = faiss.IDSelectorBitmap(len(self._bits), faiss.swig_ptr(self._bits))

    @classmethod
    def of(cls, seg: Segment) -> CellSkip | None:
        """The selector of ``seg``, or None (nothing dead, another backend, other labels)."""
        from embedops.index.ivf import IVFIndex

        index = seg.index
        if not len(seg.dead) or not isinstance(index, IVFIndex) or index._index is None \
                or not index.ids_are_rows():
            return None
        live = np.ones(int(index.count), dtype=bool)
        live[seg.dead[seg.dead < len(live)]] = False
        return cls(live)

    @property
    def nbytes(self) -> int:
        """RAM of the live bitmap."""
        return int(self._bits.nbytes)


class ExactTail:
    """The live rows of the small exact segments in one FAISS flat index (as the segments hold
    them: normalized for cosine) labelled with their global ids. FAISS scores one query with
    SIMD and a batch with one BLAS product, and keeps the top ``k`` in C."""

    def __init__(self, vectors: F32, ids: IdArray, metric: str) -> None:
        import faiss

        self.metric, self.rows = metric, len(ids)
        dim = vectors.shape[1]
        flat = faiss.IndexFlatL2(dim) if metric == "l2" else faiss.IndexFlatIP(dim)
        self._index: Any = faiss.IndexIDMap(flat)
        self._flat = flat  # the map does not own it
        self._index.add_with_ids(vectors, ids)

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
        return int(self.rows * (self._flat.d * 4 + 8))

    def lane(self) -> Lane:
        """The tail's lane (labels are global ids: base 0)."""
        return Lane(self._index.search_c, None, 0)


class Plan:
    """How one tuning searches: ``lanes`` (one FAISS call each, ``k`` columns each) and
    ``others`` (segments searched through their backend: (segment, tombstone mask, knobs,
    FAISS parameters skipping the tombstones or None))."""

    def __init__(self, lanes: tuple[Lane, ...], others: tuple[Any, ...]) -> None:
        self.lanes, self.others = lanes, others
        self.bases = np.array([lane.base for lane in lanes], dtype=np.int64)
        self._columns: dict[int, IdArray] = {}

    def column_bases(self, k: int) -> IdArray:
        """The id base of each of the lanes' ``len(lanes) * k`` columns (cached per k)."""
        col = self._columns.get(k)
        if col is None:
            col = np.repeat(self.bases, k)
            if len(self._columns) < 16:
                self._columns[k] = col
        return col


def run_lanes(lanes: Sequence[Lane], q: F32, k: int, pool: Any = None, threads: int = 1
              ) -> tuple[F32, IdArray]:
    """(distances, labels) of every lane, shape ``(lanes, queries, k)``, FAISS's raw output
    (missing results: label -1). With a ``pool`` (an executor) and ``threads`` > 1, the lanes
    are dealt round-robin into that many groups: this thread runs the first group, the pool
    the others, one hand-off per group, not per lane (FAISS releases the GIL)."""
    from faiss import swig_ptr

    m = len(q)
    dist = np.empty((len(lanes), m, k), dtype=np.float32)
    labels = np.empty((len(lanes), m, k), dtype=np.int64)
    qp = swig_ptr(q)

    def run(group: range) -> None:
        for j in group:
            lane = lanes[j]
            lane.search(m, qp, k, swig_ptr(dist[j]), swig_ptr(labels[j]), lane.params)

    groups = min(threads, len(lanes)) if pool is not None else 1
    futures = [pool.submit(run, range(g, len(lanes), groups)) for g in range(1, groups)]
    run(range(0, len(lanes), groups))
    for future in futures:
        future.result()
    return dist, labels


def merge(plan: Plan, k: int, scale: Any, dist: F32, labels: IdArray,
          others: Sequence[tuple[IdArray, F32]]) -> tuple[IdArray, F32]:
    """The best ``k`` of every lane's results (``run_lanes``' buffers, higher is better) and
    of ``others`` (global ids, scaled scores, ``-inf`` where masked): one sort over a small
    buffer, then global ids for the winners only."""
    lanes, m = len(plan.lanes), dist.shape[1]
    width = lanes * k
    if m == 1:
        d, lab = dist.reshape(1, width), labels.reshape(1, width)
    else:
        d = dist.transpose(1, 0, 2).reshape(m, width)
        lab = labels.transpose(1, 0, 2).reshape(m, width)
    col = plan.column_bases(k)
    if others:  # their scores come scaled: scale the lanes' before comparing
        if scale is not None:
            with np.errstate(over="ignore"):  # a missing result's lowest float
                d *= scale
            scale = None
        d = np.concatenate([d, *(scores for _, scores in others)], axis=1)
        lab = np.concatenate([lab, *(ids for ids, _ in others)], axis=1)
        col = np.concatenate([col, np.zeros(d.shape[1] - width, np.int64)])
    if m == 1:  # flat indexing: cheaper than rows of one
        flat_d, flat_lab = d.reshape(-1), lab.reshape(-1)
        order = (-flat_d).argsort(kind="stable")[:k]
        found, scores = flat_lab[order][None], flat_d[order][None]
        base = col[order]
    else:
        order = np.argsort(-d, axis=1, kind="stable")[:, :k]
        rows = np.arange(m)[:, None]
        found, scores, base = lab[rows, order], d[rows, order], col[order]
    return finish(found + base, found, scores, scale, k)


def finish(ids: IdArray, labels: IdArray, scores: F32, scale: Any, k: int
           ) -> tuple[IdArray, F32]:
    """Results as ``search`` returns them: missing ones (label -1, sorted last) as id -1 and
    score ``-inf``, cosine scores scaled by the query norms, padded to ``k``."""
    if (labels[0, -1] if len(labels) == 1 else labels[:, -1].min()) < 0:
        missing = labels < 0
        ids[missing] = -1
        scores[missing] = -np.inf
    if scale is not None:
        scores *= scale
    return pad(ids, scores, k) if ids.shape[1] < k else (ids, scores)
