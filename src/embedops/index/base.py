"""The FAISS base class of every ANN backend: one implementation of the ``Index`` contract.

The contract (ids, padding, higher-is-better scores, per-call ``search_params``) is documented
in :mod:`embedops.index.protocol`. Backends subclass :class:`FaissIndex` and fill in a few
hooks; the validation (:mod:`~embedops.index.checks`), scoring helpers
(:mod:`~embedops.index.scoring`) and file layout (:mod:`~embedops.index.files`) are shared, so
every backend behaves the same.

``search`` hands ``search_params`` (``ef_search`` for hnsw, ``nprobe`` for ivf/ivfpq,
``rescore_factor`` for ivfpq/sq8) to FAISS as per-call search parameters, so one search can
trade speed for recall without changing the index other threads are searching. Search is the
hot path, so the wrapper's own work (validation, normalization, id mapping) takes a fast path
for the common input (a C-contiguous float32 array of the right width); see
docs/benchmarks.md for timings.
"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from embedops.errors import AlreadyExists, IntegrityError, InvalidInput
from embedops.index.checks import (
    F32_DTYPE,
    METRICS,
    check_ids,
    check_k,
    check_metric,
    check_queries,
    check_search_knobs,
    check_unique,
    check_vectors,
    faiss_metric,
)
from embedops.index.files import (
    FAISS_FILE,
    FORMAT_VERSION,
    IDS_FILE,
    META_FILE,
    load_ids,
    read_arrays,
    read_meta,
    resident_nbytes,
    write_arrays,
    write_meta,
)
from embedops.index.protocol import F32, IdArray, Index
from embedops.index.scoring import exact_scores, pad, top_k

__all__ = [  # the names other modules import from here
    "F32",
    "FAISS_FILE",
    "FORMAT_VERSION",
    "IDS_FILE",
    "METRICS",
    "META_FILE",
    "FaissIndex",
    "IdArray",
    "Index",
    "check_metric",
    "exact_scores",
    "faiss_metric",
    "pad",
    "read_meta",
    "top_k",
]


def is_identity(ids: IdArray) -> bool:
    """True when ``ids`` are ``0..n-1`` in order (every segment's): each id is its own row."""
    n = len(ids)
    if not n:
        return True
    if int(ids[0]) != 0 or int(ids[-1]) != n - 1:
        return False
    step = 1 << 20  # compared a slice at a time: no n-long temporary
    return all(np.array_equal(ids[a:a + step], np.arange(a, min(n, a + step)))
               for a in range(0, n, step))


class FaissIndex:
    """Base of every backend: validation, metric handling, ids, save/load.

    Subclasses set ``kind`` and ``params_cls``, keep their FAISS index in ``self._index`` and
    implement ``_reset``, ``_add``, ``_remove`` and ``_search`` (plus optionally
    ``_save_extra``/``_load_extra``). A lock serializes searches with writes, so one index can
    serve a threaded web server while items are upserted.
    """

    kind: ClassVar[str] = ""
    params_cls: ClassVar[type] = object
    # True: FAISS labels are row positions in self._ids (flat codes compact on remove);
    # False: FAISS stores the caller's ids as labels (IVF)
    labels_are_positions: ClassVar[bool] = True
    # True: a loaded index memory-maps its id array (compressed kinds, whose ids would
    # otherwise outweigh their codes; see files.read_arrays)
    ids_mapped: ClassVar[bool] = False

    def __init__(self, dim: int, metric: str = "cosine", params: Any = None) -> None:
        if not isinstance(dim, int | np.integer) or int(dim) <= 0:
            raise InvalidInput(f"index dimension must be a positive integer, got {dim!r}")
        self.dim = int(dim)
        self.metric = check_metric(metric)
        self._one_query = (1, self.dim)
        self._tunings: dict[tuple[Any, ...], dict[str, int]] = {}
        self.params = params if params is not None else self.params_cls()
        self._ids: IdArray = np.empty(0, dtype=np.int64)
        self._index: Any = None
        self._lock = threading.RLock()
        # (id and size of the FAISS object, its serialised bytes): see memory_bytes
        self._memory_seen: tuple[tuple[int, int], int] | None = None
        self._reset()

    # --- the contract ---------------------------------------------------------------------
    @property
    def count(self) -> int:
        """Number of live (searchable) vectors."""
        return int(len(self._ids))

    def ids(self) -> IdArray:
        """The live ids (a copy)."""
        return self._ids.copy()

    def build(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Replace the whole content with ``vectors`` (n, dim) under ``ids`` (n,) int64."""
        vecs, ids64 = self._prepare(vectors, ids, check_existing=False)
        with self._lock:
            self._reset()
            self._ids = np.empty(0, dtype=np.int64)
            if len(ids64):
                self._add(vecs, ids64)

    def copy(self) -> FaissIndex:
        """An independent copy: the FAISS index cloned, the arrays copied, a lock of its own
        (a merge extends a copy of a segment's graph while the original keeps serving)."""
        import copy as copy_module

        import faiss

        with self._lock:
            other = copy_module.copy(self)
            for name, value in vars(self).items():
                if isinstance(value, np.ndarray):
                    setattr(other, name, value.copy())
            other._index = faiss.clone_index(self._index)
        other._lock = threading.RLock()
        other._tunings = {}
        other._memory_seen = None
        other._after_copy()
        return other

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Add new vectors; an id already in the index is refused (use ``upsert``)."""
        with self._lock:
            vecs, ids64 = self._prepare(vectors, ids, check_existing=True)
            if len(ids64):
                self._add(vecs, ids64)

    def upsert(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Add vectors, replacing those whose id is already in the index."""
        vecs, ids64 = self._prepare(vectors, ids, check_existing=False)
        with self._lock:
            if len(ids64):
                self.remove(ids64)
                self._add(vecs, ids64)

    def remove(self, ids: np.ndarray | list[int]) -> int:
        """Remove ids; unknown ids are ignored. Returns how many were removed."""
        ids64 = np.unique(check_ids(ids, None))
        with self._lock:
            present = ids64[np.isin(ids64, self.ids())]
            return self._remove(present) if len(present) else 0

    def search(
        self, queries: np.ndarray, k: int, search_params: dict[str, Any] | None = None
    ) -> tuple[IdArray, F32]:
        """The ``k`` best ids and scores for each query row (see the module docstring).

        ``search_params`` overrides this backend's search knobs for this call only (see
        ``search_knobs``); an unknown knob or an out-of-range value is an InvalidInput.
        """
        tuning = self._tuning(search_params) if search_params else None
        if (  # one query, as FAISS takes it: what a server sends (see _search_one)
            type(queries) is np.ndarray
            and queries.shape == self._one_query
            and queries.dtype is F32_DTYPE
            and type(k) is int
            and k > 0
            and queries.flags.c_contiguous
        ):
            found = self._search_one(queries, k, tuning)
            if found is not None:
                return found
        q, scale = check_queries(queries, self.dim, self.metric)
        k = check_k(k)
        with self._lock:
            n = len(self._ids)
            if n == 0 or len(q) == 0:
                empty = np.empty((len(q), 0), np.int64), np.empty((len(q), 0), np.float32)
                return pad(*empty, k)
            ids, scores = self._search(q, min(k, n), tuning)
        if len(ids) != 1 or ids[0, -1] < 0:  # FAISS marks missing results -1, last in a row
            with np.errstate(over="ignore"):  # FAISS pads them with -FLT_MAX
                if scale is not None:
                    scores *= scale
                scores[ids < 0] = -np.inf
        elif scale is not None:
            scores *= scale  # cosine: inner products with the raw query, over its norm
        return (ids, scores) if ids.shape[1] == k else pad(ids, scores, k)

    def _search_one(
        self, q: F32, k: int, tuning: dict[str, int] | None
    ) -> tuple[IdArray, F32] | None:
        """``search`` for one checked query, in as few Python steps as possible: every Python
        step after FAISS has walked its graph runs on cold caches, costing several times what
        it does in a micro-benchmark (timings: docs/benchmarks.md). None: not the simple case
        (empty index, a bad value, padding)."""
        import faiss

        norm2 = faiss.fvec_norm_L2sqr(faiss.swig_ptr(q), self.dim)  # NaN/inf: not finite
        if not math.isfinite(norm2):
            return None  # the general path says what is wrong
        with self._lock:
            n = len(self._ids)
            if n < k:
                return None
            ids, scores = self._search(q, k, tuning)
        if ids[0, -1] < 0:
            return None  # FAISS found fewer than k: the general path pads
        if self.metric == "cosine" and norm2 > 0:
            scores *= 1.0 / math.sqrt(norm2)
        return ids, scores

    # knob name -> (lowest, highest) accepted per-call value; backends override
    search_knobs: ClassVar[dict[str, tuple[int, int]]] = {}

    def _tuning(self, search_params: dict[str, Any]) -> dict[str, int]:
        """``check_search_params``, remembered for the few knob settings a service uses."""
        try:
            # the types are part of the key: True == 1 and 2.0 == 2, but only ints are valid
            key = tuple((name, type(value), value) for name, value in search_params.items())
            known = self._tunings.get(key)
        except (AttributeError, TypeError):  # not a mapping, or unhashable values
            return self.check_search_params(search_params)
        if known is None:
            known = self.check_search_params(search_params)
            if len(self._tunings) < 64:  # bounded: values come from callers
                self._tunings[key] = known
        return known

    def check_search_params(self, search_params: dict[str, Any] | None) -> dict[str, int]:
        """Validated per-call knobs (``{}`` for None), or InvalidInput naming what is allowed."""
        out = check_search_knobs(self.kind, self.search_knobs, search_params)
        if out:
            self._check_knobs(out)
        return out

    def _check_knobs(self, tuning: dict[str, int]) -> None:
        """Hook: refuse knob values this particular index cannot honour."""

    def memory_bytes(self) -> int:
        """RAM held by the index structure and its id map (not memory-mapped arrays: a rescore
        store, a compressed kind's loaded ids).
        FAISS's part is its serialised size (codes, graph links, centroids: what it holds in
        RAM), measured once per index state: /metrics and ``index status`` ask often, and
        serialising a 1M-vector graph costs a copy of it."""
        import faiss

        with self._lock:
            index = self._index
            key = (id(index), 0 if index is None else int(index.ntotal))
            cached = self._memory_seen
            if cached is None or cached[0] != key:
                cached = (key, 0 if index is None else len(faiss.serialize_index(index)))
                self._memory_seen = cached
            return int(cached[1] + self._extra_memory())

    def save(self, folder: str | Path) -> None:
        """Write the index to ``folder`` (created): ``index.json``, ``index.faiss``, arrays."""
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        with self._lock:
            write_arrays(path, self._index, self._ids)
            self._save_extra(path)
            state = self._state()
        write_meta(path, {
            "kind": self.kind,
            "dim": self.dim,
            "metric": self.metric,
            "params": asdict(self.params),
            "state": state,
        })

    @classmethod
    def load(cls, folder: str | Path) -> Index:
        """Read an index written by :meth:`save` (any backend: dispatches on ``index.json``)."""
        from embedops.index import load_index

        return load_index(folder)

    def describe(self) -> dict[str, Any]:
        """Kind, metric, dim, params, count and memory, for status pages."""
        return {
            "kind": self.kind,
            "metric": self.metric,
            "dim": self.dim,
            "params": asdict(self.params),
            "count": self.count,
            "memory_bytes": self.memory_bytes(),
        }

    # --- validation -----------------------------------------------------------------------
    def _prepare(self, vectors: Any, ids: Any, check_existing: bool) -> tuple[F32, IdArray]:
        """Checked vectors and their ids; ``check_existing``: refuse ids already present."""
        vecs = check_vectors(vectors, self.dim, self.metric)
        ids64 = check_ids(ids, len(vecs))
        check_unique(ids64)
        if check_existing:
            clash = ids64[np.isin(ids64, self.ids())]
            if len(clash):
                raise AlreadyExists(
                    f"{len(clash)} id(s) already in the index: {clash[:5].tolist()}",
                    "use upsert() to replace them, or remove() them first",
                )
        return vecs, ids64

    # --- backend hooks --------------------------------------------------------------------
    def _reset(self) -> None:
        raise self._missing_hook("_reset")

    def _add(self, vecs: F32, ids: IdArray) -> None:
        raise self._missing_hook("_add")

    def _remove(self, ids: IdArray) -> int:
        """Remove present ``ids`` from FAISS and from ``self._ids`` (and aligned arrays)."""
        import faiss

        positions = np.flatnonzero(np.isin(self._ids, ids)).astype(np.int64)
        labels = positions if self.labels_are_positions else ids
        removed = int(self._index.remove_ids(faiss.IDSelectorBatch(labels)))
        self._ids = np.delete(self._ids, positions)
        self._after_remove(positions)
        return removed

    def map_saved(self, folder: str | Path) -> None:
        """Serve from the files ``save`` just wrote to ``folder`` what a loaded index keeps
        memory-mapped (the ids with ``ids_mapped``; backends add theirs), so an index built
        in this process holds what a loaded one holds, and a later copy of it links those
        files instead of rewriting them."""
        if not self.ids_mapped:
            return
        with self._lock:
            ids = load_ids(Path(folder), mapped=True)
            if ids.shape != self._ids.shape:
                raise IntegrityError(f"{Path(folder) / IDS_FILE} does not hold this index's "
                                     "ids", "rebuild the index from the catalog")
            self._ids = ids

    def _after_copy(self) -> None:
        """Rebuild what a copy must not share with the original (hook: FAISS objects made
        from the index, per-object caches)."""

    def _after_remove(self, positions: np.ndarray) -> None:
        """Hook for subclasses that keep arrays aligned with ``self._ids``."""

    def _search(self, q: F32, k: int, tuning: dict[str, int] | None) -> tuple[IdArray, F32]:
        raise self._missing_hook("_search")

    def _faiss_params(self, tuning: dict[str, int] | None) -> Any:
        """FAISS ``SearchParameters`` for this call (None: the index's own settings)."""
        return None

    def _faiss_search(self, q: F32, k: int, tuning: dict[str, int] | None) -> tuple[F32, Any]:
        """(distances, labels) straight from FAISS's C++ search: ``q`` is already checked,
        so the Python wrapper's own checks and conversions are skipped."""
        return self._faiss_call(q, k, self._faiss_params(tuning))

    def _faiss_call(self, q: F32, k: int, params: Any) -> tuple[F32, Any]:
        """``_faiss_search`` with FAISS ``SearchParameters`` given (or None)."""
        from faiss import swig_ptr

        m = len(q)
        distances = np.empty((m, k), dtype=np.float32)
        labels = np.empty((m, k), dtype=np.int64)
        self._index.search_c(m, swig_ptr(q), k, swig_ptr(distances), swig_ptr(labels), params)
        return distances, labels

    def _missing_hook(self, name: str) -> NotImplementedError:
        """Every backend must implement the FAISS hooks; say which one this backend lacks."""
        return NotImplementedError(f"index backend {type(self).__name__} does not implement {name}")

    def _restore(self, path: Path, state: dict[str, Any]) -> None:
        """Read the arrays written by :meth:`save` (called by ``load_index``)."""
        self._index, self._ids = read_arrays(path, self.dim, self.ids_mapped)
        self._load_extra(path, state)

    def _extra_memory(self) -> int:
        return resident_nbytes(self._ids)

    def _state(self) -> dict[str, Any]:
        return {}

    def _save_extra(self, path: Path) -> None:
        pass

    def _load_extra(self, path: Path, state: dict[str, Any]) -> None:
        pass

    @staticmethod
    def _map_labels(labels: np.ndarray, id_of_label: IdArray) -> IdArray:
        """FAISS labels to ids through ``id_of_label``; label -1 (no result) stays -1."""
        ids = id_of_label[labels]  # label -1 picks the last id here, fixed just below
        # FAISS puts missing results (-1) last in a row: one scalar test covers one query
        if len(labels) != 1 or labels[0, -1] < 0:
            ids[labels < 0] = -1
        return ids

    def _to_scores(self, distances: np.ndarray) -> F32:
        """FAISS distances to higher-is-better scores (L2 distances are negated)."""
        if self.metric == "l2":
            np.negative(distances, out=distances)  # FAISS returned a fresh array we own
        return distances
