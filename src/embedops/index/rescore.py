"""Exact rescoring of quantized candidates from the full vectors.

Quantized backends (ivfpq, sq8) fetch ``rescore_factor * k`` candidates from their compressed
codes, then re-rank them with exact scores computed from the full vectors. The full vectors live
in ``vectors.npy`` next to the index and are memory-mapped on load, so they sit in the page
cache, not in the index's RAM.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from embedops.errors import IntegrityError, InvalidInput
from embedops.index.base import F32, IdArray, exact_scores, is_identity, pad, top_k
from embedops.index.files import resident_nbytes

VECTORS_FILE = "vectors.npy"
DTYPES = ("float32", "float16")
# a floor on the candidate pool: for small k, k * factor candidates miss too many true neighbours
MIN_CANDIDATES = 64
_CHUNK = 64


class VectorStore:
    """Full vectors, one row per entry of the owner's ``_ids`` array (same order), in one or
    more *parts*: a loaded store memory-maps ``vectors.npy`` (and ``vectors.<i>.npy``); rows
    appended to it become a new part held in memory, so a copy of a loaded index extended by a
    refresh (``segment_ops``) saves its new rows only and hard-links the parts it was loaded
    from (``save``), instead of rewriting every vector."""

    def __init__(self, dim: int, dtype: str = "float32") -> None:
        self.dim = dim
        self.dtype = np.dtype(dtype)
        self.parts: list[np.ndarray] = []

    @property
    def rows(self) -> int:
        """Rows over all parts."""
        return sum(len(part) for part in self.parts)

    def copy(self) -> VectorStore:
        """A store sharing these parts (never written in place) with a list of its own."""
        other = VectorStore(self.dim, str(self.dtype))
        other.dtype, other.parts = self.dtype, list(self.parts)
        return other

    def append(self, vecs: F32) -> None:
        """Append rows: to the last part when it is in memory, else as a new part (a mapped
        part is never copied into memory); past ``MAX_PARTS`` the parts after the first are
        joined into one."""
        rows = np.array(vecs, dtype=self.dtype)  # one copy, cast on the way
        if self.parts and resident_nbytes(self.parts[-1]):
            self.parts[-1] = np.concatenate([self.parts[-1], rows])
        else:
            self.parts.append(rows)
        if len(self.parts) > MAX_PARTS:  # reads what the folds added, not the first part
            self.parts = [self.parts[0], np.concatenate(self.parts[1:])]

    def delete(self, positions: np.ndarray) -> None:
        """Drop the rows at ``positions`` (the store becomes one part in memory)."""
        whole = self.parts[0] if len(self.parts) == 1 else np.concatenate(self.parts)
        self.parts = [np.delete(whole, positions, axis=0)]

    def clear(self) -> None:
        """Drop every row."""
        self.parts = []

    def save(self, folder: Path) -> None:
        """Write ``vectors.npy`` (and ``vectors.<i>.npy`` for the later parts); a part mapped
        from a file is hard-linked from it (the file is immutable), else written."""
        parts = self.parts or [np.empty((0, self.dim), dtype=self.dtype)]
        for n, part in enumerate(parts):
            target = folder / _part_file(n)
            source = getattr(part, "filename", None)
            if source is not None and not resident_nbytes(part):
                try:
                    os.link(source, target)
                    continue
                except OSError:  # another file system, or links refused: write it
                    pass
            np.save(target, np.ascontiguousarray(part))

    def load(self, folder: Path, rows: int) -> None:
        """Memory-map the parts; IntegrityError if their shapes do not add up to ``rows``."""
        parts = [np.load(folder / VECTORS_FILE, mmap_mode="r")]
        while (folder / _part_file(len(parts))).exists():
            parts.append(np.load(folder / _part_file(len(parts)), mmap_mode="r"))
        widths = {part.shape[1:] for part in parts}
        total = sum(len(part) for part in parts)
        if widths != {(self.dim,)} or total != rows or len({p.dtype for p in parts}) != 1:
            raise IntegrityError(
                f"{folder / VECTORS_FILE} holds {total} rows of shapes {sorted(widths)} in "
                f"{len(parts)} part(s), expected {rows} of width {self.dim}",
                "rebuild the index from the catalog",
            )
        self.parts, self.dtype = parts, parts[0].dtype

    def rescore(
        self, q: F32, rows: np.ndarray, ids: IdArray | None, k: int, metric: str
    ) -> tuple[IdArray, F32]:
        """Re-rank candidate ``rows`` (m, c; -1 = none, last in a row) exactly; return the
        top ``k`` ids (``ids[row]``; ``ids`` None: the rows are the ids)."""
        k = min(k, rows.shape[1])
        if len(self.parts) == 1:
            best_rows, scores = _rescore_part(self.parts[0], q, rows, k, metric)
        elif len(q) == 1:
            best_rows, scores = self._rescore_one(q, rows[0], k, metric)
        else:
            best_rows, scores = self._rescore_parts(q, rows, k, metric)
        if ids is None:
            return best_rows, scores  # a missing result is row -1, as an id should be
        best_ids = ids[best_rows]  # row -1 picks the last id here, fixed just below
        if len(best_rows) != 1 or best_rows[0, -1] < 0:  # missing results come last in a row
            best_ids[best_rows < 0] = -1
        return best_ids, scores

    def _rescore_one(self, q: F32, row: np.ndarray, k: int, metric: str
                     ) -> tuple[np.ndarray, F32]:
        """``_rescore_parts`` for one query (a server's usual call), with a few numpy calls
        instead of masks over the whole block: each part re-ranks the candidates it holds,
        then the best ``k`` of theirs are kept (``-1`` / ``-inf`` pad a short row)."""
        row = row[row >= 0]
        found_rows, found_scores, start = [], [], 0
        for part in self.parts:
            stop = start + len(part)
            local = row[(row >= start) & (row < stop)]
            if len(local):
                best, scores = _rescore_part(part, q, (local - start)[None],
                                             min(k, len(local)), metric)
                found_rows.append(best[0] + start)
                found_scores.append(scores[0])
            start = stop
        if not found_rows:
            return pad(np.empty((1, 0), np.int64), np.empty((1, 0), np.float32), k)
        rows_all, scores_all = np.concatenate(found_rows), np.concatenate(found_scores)
        order = np.argsort(-scores_all, kind="stable")[:k]
        return pad(rows_all[order][None], scores_all[order][None], k)

    def _rescore_parts(
        self, q: F32, rows: np.ndarray, k: int, metric: str
    ) -> tuple[np.ndarray, F32]:
        """Each part re-ranks the candidates it holds (local rows, the others -1 and last),
        then the best ``k`` of all parts are kept."""
        found_rows, found_scores, start = [], [], 0
        for part in self.parts:
            stop = start + len(part)
            local = np.where((rows >= start) & (rows < stop), rows - start, -1)
            local = -np.sort(-local, axis=1)  # -1 last: FAISS stops a row at its first -1
            best, scores = _rescore_part(part, q, local, k, metric)
            found_rows.append(np.where(best >= 0, best + start, -1))
            found_scores.append(np.where(best >= 0, scores, np.float32(-np.inf)))
            start = stop
        return top_k(np.concatenate(found_rows, axis=1), np.concatenate(found_scores, axis=1), k)


#: parts a store keeps before joining the later ones (see ``VectorStore.append``)
MAX_PARTS = 4


def _part_file(n: int) -> str:
    return VECTORS_FILE if n == 0 else f"vectors.{n}.npy"


def _rescore_part(vectors: np.ndarray, q: F32, rows: np.ndarray, k: int, metric: str
                  ) -> tuple[np.ndarray, F32]:
    """The best ``k`` of candidate ``rows`` of one part: FAISS's C++ re-ranking over float32
    rows (memory-mapped or not), numpy's for float16."""
    if vectors.dtype == np.float32 and vectors.flags["C_CONTIGUOUS"]:
        return _rescore_faiss(vectors, q, rows, k, metric)
    return _rescore_numpy(vectors, q, rows, k, metric)


def _rescore_faiss(vectors: np.ndarray, q: F32, rows: np.ndarray, k: int, metric: str
                   ) -> tuple[np.ndarray, F32]:
    import faiss

    m, c = rows.shape
    if not rows.flags.c_contiguous or rows.dtype != np.int64:
        rows = np.ascontiguousarray(rows, dtype=np.int64)
    vals = np.empty((m, k), dtype=np.float32)
    best = np.empty((m, k), dtype=np.int64)
    knn = getattr(faiss, "knn_L2sqr_by_idx" if metric == "l2" else "knn_inner_products_by_idx")
    ptr = faiss.swig_ptr  # ld_ids must be given: the -1 default misreads rows past the first
    knn(ptr(q), ptr(vectors), ptr(rows), vectors.shape[1], m, len(vectors), c, k,
        ptr(vals), ptr(best), c)  # fmt: skip
    if metric == "l2":
        np.negative(vals, out=vals)
    if m != 1 or best[0, -1] < 0:
        vals[best < 0] = -np.inf
    return best, vals


def _rescore_numpy(vectors: np.ndarray, q: F32, rows: np.ndarray, k: int, metric: str
                   ) -> tuple[np.ndarray, F32]:
    """The same re-ranking for float16 rows, in chunks to bound the gathered block."""
    out_rows = np.empty((len(q), k), dtype=np.int64)
    out_scores = np.empty((len(q), k), dtype=np.float32)
    if not len(vectors):  # nothing to gather from: every candidate is missing
        out_rows.fill(-1)
        out_scores.fill(-np.inf)
        return out_rows, out_scores
    for start in range(0, len(q), _CHUNK):
        part = rows[start : start + _CHUNK]
        scores = exact_scores(q[start : start + _CHUNK], vectors[np.maximum(part, 0)], metric)
        best_rows, best = top_k(part, scores, k)
        out_rows[start : start + _CHUNK], out_scores[start : start + _CHUNK] = best_rows, best
    return out_rows, out_scores


class Rescoring:
    """Mixin for quantized backends (put it first in the bases): keeps the full vectors
    row-aligned with ``self._ids`` and re-ranks ``max(rescore_factor * k, MIN_CANDIDATES)``
    candidates exactly. Subclasses map FAISS labels to rows with ``_candidate_rows``. When
    the ids are ``0..n-1`` in row order (``is_identity``: a segment's), results are the
    rows themselves and the id array is not read by a search."""

    dim: int
    kind: ClassVar[str]
    metric: str
    params: Any
    _ids: IdArray
    _index: Any
    # ids are 0..n-1 in row order; None: not checked since the last write
    _same_rows: bool | None = None

    def ids_are_rows(self) -> bool:
        """``is_identity(self._ids)``, remembered until the next write."""
        if self._same_rows is None:
            self._same_rows = is_identity(self._ids)
        return self._same_rows

    @property
    def count(self) -> int:
        return int(len(self._ids))

    def _new_store(self) -> None:
        self._store = VectorStore(self.dim, self.params.rescore_dtype)

    def _after_copy(self) -> None:
        super()._after_copy()  # type: ignore[misc]
        self._store = self._store.copy()  # the copy's appends must not reach the original

    def _add(self, vecs: F32, ids: IdArray) -> None:
        super()._add(vecs, ids)  # type: ignore[misc]
        self._same_rows = None
        if self.params.rescore_factor:
            self._store.append(vecs)

    def _after_remove(self, positions: np.ndarray) -> None:
        self._same_rows = None
        if self.params.rescore_factor:
            self._store.delete(positions)

    def _candidate_rows(self, labels: np.ndarray) -> np.ndarray:
        """Rows of the store for FAISS labels (positional backends: the labels themselves)."""
        return labels

    def _check_knobs(self, tuning: dict[str, int]) -> None:
        if tuning.get("rescore_factor") and not self.params.rescore_factor:
            raise InvalidInput(
                f"this {self.kind} index keeps no full vectors, so it cannot rescore",
                "rebuild it with rescore_factor > 0, or leave rescore_factor out",
            )

    def _factor(self, tuning: dict[str, int] | None) -> int:
        """Candidates per result for this call (0: rank by the codes alone)."""
        if tuning and "rescore_factor" in tuning:
            return tuning["rescore_factor"]
        return int(self.params.rescore_factor)

    def _fetch(self, k: int, factor: int) -> int:
        return min(self.count, max(k * factor, MIN_CANDIDATES))

    def _search(self, q: F32, k: int, tuning: dict[str, int] | None) -> tuple[IdArray, F32]:
        factor = self._factor(tuning)
        if not factor:
            return super()._search(q, k, tuning)  # type: ignore[misc, no-any-return]
        _, labels = self._faiss_search(q, self._fetch(k, factor), tuning)  # type: ignore[attr-defined]
        return self._rescored(q, k, labels)

    def _rescored(self, q: F32, k: int, labels: np.ndarray) -> tuple[IdArray, F32]:
        """The ``k`` best of the candidate ``labels`` by exact score."""
        rows = self._candidate_rows(labels)
        ids = None if self.ids_are_rows() else self._ids
        return self._store.rescore(q, rows, ids, k, self.metric)

    def _save_extra(self, path: Path) -> None:
        if self.params.rescore_factor:
            self._store.save(path)

    def map_saved(self, folder: str | Path) -> None:
        """The full vectors memory-mapped from the files just saved in ``folder`` (and the
        ids, as every backend maps them), replacing the copies held in memory."""
        super().map_saved(folder)  # type: ignore[misc]
        if self.params.rescore_factor:
            store = VectorStore(self.dim, self.params.rescore_dtype)
            store.load(Path(folder), len(self._ids))
            with self._lock:  # type: ignore[attr-defined]
                self._store = store

    def _load_extra(self, path: Path, state: dict[str, Any]) -> None:
        if self.params.rescore_factor:
            self._store.load(path, len(self._ids))


class IVFRescoring(Rescoring):
    """Rescoring for IVF backends, whose FAISS labels are the caller's ids (put it first in
    the bases): a candidate's row is found through a lookup built once per write
    (``_row_lookup``), or is the label itself when the ids are ``0..n-1`` in row order. A
    loaded index memory-maps its ids (``ids_mapped``): with a segment's ids no search reads
    them, so they cost no memory of the process's own (``memory_bytes``)."""

    ids_mapped = True
    _order: np.ndarray | None

    def _reset(self) -> None:
        super()._reset()  # type: ignore[misc]
        self._new_store()
        self._order = None  # id -> row lookup, rebuilt after writes
        self._same_rows = None

    def _add(self, vecs: F32, ids: IdArray) -> None:
        super()._add(vecs, ids)
        self._order = None

    def _after_remove(self, positions: np.ndarray) -> None:
        self._order = None
        super()._after_remove(positions)

    def search_selected(self, q: F32, k: int, tuning: dict[str, int] | None, params: Any
                        ) -> tuple[IdArray, F32]:
        """The IVF ``search_selected`` (tombstones skipped by FAISS's selector), rescored:
        every candidate is live, so the rescoring depth is not spent on tombstones."""
        factor = self._factor(tuning)
        if not factor:
            return super().search_selected(q, k, tuning, params)  # type: ignore[misc, no-any-return]
        _, labels = self._faiss_call(q, self._fetch(k, factor), params)  # type: ignore[attr-defined]
        return self._rescored(q, k, labels)

    def _candidate_rows(self, labels: np.ndarray) -> np.ndarray:
        """Row of each candidate id in ``self._ids`` (-1 stays -1)."""
        if self.ids_are_rows():
            return labels
        if self._order is None:
            self._order = _row_lookup(self._ids)
        lookup = self._order
        if lookup.dtype == np.int32:  # dense ids: a direct table id -> row
            return lookup[labels]  # the table ends with -1, which label -1 indexes
        sorted_ids = self._ids[lookup]
        pos = np.searchsorted(sorted_ids, labels).clip(0, len(lookup) - 1)
        return np.where((labels < 0) | (sorted_ids[pos] != labels), -1, lookup[pos])

    def _extra_memory(self) -> int:
        lookup = 0 if self._order is None else self._order.nbytes
        return resident_nbytes(self._ids) + int(lookup)


def _row_lookup(ids: IdArray) -> np.ndarray:
    """A table ``id -> row`` (int32, -1 = absent) when ids are dense, else ``argsort(ids)``."""
    if len(ids) and int(ids.max()) < 2 * len(ids) + 1024 and len(ids) < 2**31:
        table = np.full(int(ids.max()) + 2, -1, dtype=np.int32)
        table[ids] = np.arange(len(ids), dtype=np.int32)
        return table
    return np.argsort(ids, kind="stable").astype(np.int64)
