"""The Index contract shared by every ANN backend, and the checks every backend needs.

An index maps int64 ids (>= 0) to vectors of one dimension and answers
``search(queries, k) -> (ids, scores)``: ids ``(m, k)`` int64 padded with ``-1`` when fewer than
``k`` items exist, scores ``(m, k)`` float32 where **higher is better for every metric**:

* ``cosine`` - vectors and queries are l2-normalized, score = cosine similarity;
* ``ip`` - score = inner product;
* ``l2`` - score = minus the *squared* euclidean distance.

Padding rows carry score ``-inf``. Backends subclass :class:`FaissIndex` and fill in a few hooks;
the validation, metric handling and file layout live here, so every backend behaves the same.

``search`` takes per-call ``search_params`` (``ef_search`` for hnsw, ``nprobe`` for ivf/ivfpq,
``rescore_factor`` for ivfpq/sq8): they are handed to FAISS as per-call search parameters, so
one search can trade speed for recall without changing the index other threads are searching.

Search is the hot path: one query against an HNSW graph of 20k MiniLM vectors takes ~60-200 us,
so the wrapper's own work (validation, normalization, id mapping) is kept to a few microseconds
by a fast path for the common input (a C-contiguous float32 array of the right width).
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from embedops.errors import AlreadyExists, DimensionMismatch, IntegrityError, InvalidInput
from embedops.fsio import atomic_write_json

METRICS = ("cosine", "ip", "l2")
META_FILE = "index.json"
FAISS_FILE = "index.faiss"
IDS_FILE = "ids.npy"
FORMAT_VERSION = 1
_INTEGERS = (int, np.integer)

IdArray = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]
_F32 = np.dtype(np.float32)


def _is_int(value: Any) -> bool:
    return type(value) is int or (not isinstance(value, bool) and isinstance(value, _INTEGERS))


def _check_k(k: Any) -> int:
    if not _is_int(k) or k <= 0:
        raise InvalidInput(f"k must be a positive integer, got {k!r}")
    return int(k)


def check_metric(metric: str) -> str:
    """Validate a metric name."""
    if metric not in METRICS:
        raise InvalidInput(f"unknown metric '{metric}'", f"use one of: {', '.join(METRICS)}")
    return metric


def faiss_metric(metric: str) -> int:
    """The FAISS metric constant that implements ``metric``."""
    import faiss

    return int(faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT)


def exact_scores(queries: F32, vectors: np.ndarray, metric: str) -> F32:
    """Scores (higher is better) of each query against its own candidates ``(m, c, dim)``."""
    cand = vectors.astype(np.float32, copy=False)
    dots = np.matmul(cand, queries[:, :, None])[:, :, 0]
    if metric != "l2":
        return dots
    q2 = np.einsum("md,md->m", queries, queries)[:, None]
    x2 = np.einsum("mcd,mcd->mc", cand, cand)
    return (2.0 * dots - q2 - x2).astype(np.float32, copy=False)


def top_k(ids: IdArray, scores: F32, k: int) -> tuple[IdArray, F32]:
    """Keep the ``k`` best (ids, scores) of each row, best first; ``-1`` ids sort last."""
    scores = np.where(ids < 0, np.float32(-np.inf), scores)
    cols = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(ids, cols, axis=1), np.take_along_axis(scores, cols, axis=1)


def pad(ids: IdArray, scores: F32, k: int) -> tuple[IdArray, F32]:
    """Pad (or cut) results to exactly ``k`` columns: ``-1`` ids, ``-inf`` scores."""
    m, have = ids.shape
    if have >= k:
        return ids[:, :k], scores[:, :k]
    out_ids = np.full((m, k), -1, dtype=np.int64)
    out_scores = np.full((m, k), -np.inf, dtype=np.float32)
    out_ids[:, :have], out_scores[:, :have] = ids, scores
    return out_ids, out_scores


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
        ids64 = np.unique(self._check_ids(ids, None))
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
            and queries.dtype is _F32
            and type(k) is int
            and k > 0
            and queries.flags.c_contiguous
        ):
            found = self._search_one(queries, k, tuning)
            if found is not None:
                return found
        q, scale = self._check_queries(queries)
        k = _check_k(k)
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
        """``search`` for one checked query, in as few Python steps as possible: on an index of
        20k vectors a query takes 60-200 us in FAISS, and every Python step after FAISS has
        walked its graph runs on cold caches, costing several times what it does in a
        micro-benchmark. None: not the simple case (empty index, a bad value, padding)."""
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
        if not search_params:
            return {}
        if not isinstance(search_params, dict):
            raise InvalidInput(
                f"search_params must be a mapping, got {type(search_params).__name__}"
            )
        allowed = ", ".join(self.search_knobs) or "none"
        out = {}
        for name, value in search_params.items():
            if name not in self.search_knobs:
                raise InvalidInput(
                    f"'{name}' is not a search parameter of the {self.kind} index",
                    f"{self.kind} accepts: {allowed}",
                )
            low, high = self.search_knobs[name]
            if not _is_int(value) or not low <= value <= high:
                raise InvalidInput(
                    f"{self.kind} search parameter {name} must be an integer in {low}..{high}, "
                    f"got {value!r}"
                )
            out[name] = int(value)
        self._check_knobs(out)
        return out

    def _check_knobs(self, tuning: dict[str, int]) -> None:
        """Hook: refuse knob values this particular index cannot honour."""

    def memory_bytes(self) -> int:
        """RAM held by the index structure and its id map (not a memory-mapped rescore store)."""
        import faiss

        with self._lock:
            index = self._index
            faiss_bytes = 0 if index is None else len(faiss.serialize_index(index))
            return int(faiss_bytes + self._extra_memory())

    def save(self, folder: str | Path) -> None:
        """Write the index to ``folder`` (created): ``index.json``, ``index.faiss``, arrays."""
        import faiss

        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if self._index is not None:  # None: a trained backend that has seen no data yet
                faiss.write_index(self._index, str(path / FAISS_FILE))
            np.save(path / IDS_FILE, self._ids)
            self._save_extra(path)
            state = self._state()
        meta = {
            "format": FORMAT_VERSION,
            "kind": self.kind,
            "dim": self.dim,
            "metric": self.metric,
            "params": asdict(self.params),
            "state": state,
        }
        atomic_write_json(path / META_FILE, meta)

    @classmethod
    def load(cls, folder: str | Path) -> FaissIndex:
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
    def _rows(self, vectors: Any, what: str) -> F32:
        """``vectors`` as FAISS takes them: as given when they already are (the common case),
        else converted by ``_coerce``."""
        if (
            type(vectors) is np.ndarray
            and vectors.dtype is _F32
            and vectors.ndim == 2
            and vectors.shape[1] == self.dim
            and vectors.flags.c_contiguous
        ):
            return vectors
        return self._coerce(vectors, what)

    def _check_vectors(self, vectors: np.ndarray, what: str = "vector") -> F32:
        arr = self._rows(vectors, what)
        if self.metric == "cosine":
            import faiss

            out = arr.copy()  # FAISS normalizes in place; the caller's array is never changed
            faiss.normalize_L2(out)  # all-zero rows stay zero; a non-finite row turns to NaN
        else:
            out = arr  # FAISS copies what it keeps
        # one reduction for the common case; the row-wise check runs only when it fails
        if not math.isfinite(float(out.sum())):
            bad = ~np.isfinite(arr).all(axis=1)
            if bad.any():
                rows = np.flatnonzero(bad)[:5].tolist()
                raise InvalidInput(
                    f"{int(bad.sum())} {what}(s) contain NaN or infinite values (rows {rows})",
                    "fix or drop those rows before indexing",
                )
        return out

    def _coerce(self, vectors: Any, what: str) -> F32:
        """Any array-like of numbers as a C-contiguous float32 (n, dim) array, or a clear error."""
        arr = np.asarray(vectors)
        if arr.ndim == 1 and arr.size == self.dim:
            arr = arr.reshape(1, -1)
        if arr.ndim != 2:
            raise InvalidInput(f"{what}s must be a 2-D array (n, {self.dim}), got {arr.shape}")
        if arr.shape[1] != self.dim:
            raise DimensionMismatch(
                f"{what}s have dimension {arr.shape[1]} but the index has dimension {self.dim}",
                "encode with the model version the index was built with, or rebuild the index",
            )
        if arr.dtype.kind not in "fiu":
            raise InvalidInput(f"{what}s must be numeric, got dtype {arr.dtype}")
        return np.ascontiguousarray(arr, dtype=np.float32)

    def _check_queries(self, queries: np.ndarray) -> tuple[F32, Any]:
        """Checked queries and, for cosine, the factor that turns their scores into cosines.

        Queries are not normalized for cosine: the stored vectors are, so scaling a query
        changes every score of its row by the same factor and no ranking (flat, HNSW, IVF
        and PQ all rank by inner products), so the scores are divided by the norm afterwards.
        That is one reduction per query instead of a copy, a normalization and a check.
        """
        arr = self._rows(queries, "query")
        if self.metric != "cosine":
            if not math.isfinite(float(arr.sum())):
                self._check_vectors(arr, "query")  # finds the bad rows (or a mere overflow)
            return arr, None
        if len(arr) == 1:
            norm2 = float(np.dot(arr[0], arr[0]))
            if math.isfinite(norm2):
                return arr, (1.0 / math.sqrt(norm2) if norm2 > 0 else 1.0)
        else:
            norms2 = np.einsum("ij,ij->i", arr, arr)
            if math.isfinite(float(norms2.sum())):
                scale = np.ones_like(norms2)
                np.divide(1.0, np.sqrt(norms2), out=scale, where=norms2 > 0)
                return arr, scale[:, None]
        # a NaN or infinity (an error, raised here) or a norm past float32's range
        return self._check_vectors(arr, "query"), None

    def _check_ids(self, ids: Any, n: int | None) -> IdArray:
        arr = np.asarray(ids)
        if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
            raise InvalidInput(f"ids must be a 1-D integer array, got {arr.dtype} {arr.shape}")
        ids64 = arr.astype(np.int64)
        if n is not None and len(ids64) != n:
            raise InvalidInput(f"{len(ids64)} ids given for {n} vectors", "pass one id per row")
        if len(ids64) and ids64.min() < 0:
            raise InvalidInput("ids must be >= 0 (-1 marks empty result slots)")
        return ids64

    def _prepare(self, vectors: Any, ids: Any, check_existing: bool) -> tuple[F32, IdArray]:
        vecs = self._check_vectors(vectors)
        ids64 = self._check_ids(ids, len(vecs))
        uniq, counts = np.unique(ids64, return_counts=True)
        if len(uniq) != len(ids64):
            dups = uniq[counts > 1][:5].tolist()
            raise InvalidInput(
                f"duplicate ids in one batch: {dups}", "give every vector its own id"
            )
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
        from faiss import swig_ptr

        m = len(q)
        distances = np.empty((m, k), dtype=np.float32)
        labels = np.empty((m, k), dtype=np.int64)
        self._index.search_c(m, swig_ptr(q), k, swig_ptr(distances), swig_ptr(labels),
                             self._faiss_params(tuning))  # fmt: skip
        return distances, labels

    def _missing_hook(self, name: str) -> NotImplementedError:
        """Every backend must implement the FAISS hooks; say which one this backend lacks."""
        return NotImplementedError(f"index backend {type(self).__name__} does not implement {name}")

    def _restore(self, path: Path, state: dict[str, Any]) -> None:
        """Read the arrays written by :meth:`save` (called by ``load_index``)."""
        import faiss

        try:
            has_index = (path / FAISS_FILE).exists()
            self._index = faiss.read_index(str(path / FAISS_FILE)) if has_index else None
            self._ids = np.load(path / IDS_FILE).astype(np.int64, copy=False)
        except (OSError, RuntimeError, ValueError) as exc:
            raise IntegrityError(
                f"cannot read the index in {path}: {exc}", "rebuild the index from the catalog"
            ) from exc
        if self._index is None:
            if len(self._ids):
                raise IntegrityError(f"{path} lists ids but has no {FAISS_FILE}")
            return self._load_extra(path, state)
        if self._index.d != self.dim or self._index.ntotal < len(self._ids):
            raise IntegrityError(
                f"{path} holds {self._index.ntotal} vectors of dimension {self._index.d}; "
                f"index.json says {len(self._ids)} of dimension {self.dim}",
                "rebuild the index from the catalog",
            )
        self._load_extra(path, state)

    def _extra_memory(self) -> int:
        return int(self._ids.nbytes)

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


def read_meta(folder: Path) -> dict[str, Any]:
    """The ``index.json`` of a saved index, or IntegrityError if missing or unreadable."""
    try:
        meta: dict[str, Any] = json.loads((folder / META_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise IntegrityError(
            f"cannot read {folder / META_FILE}: {exc}", "rebuild the index from the catalog"
        ) from exc
    if meta.get("format") != FORMAT_VERSION:
        raise IntegrityError(
            f"index format {meta.get('format')} in {folder} is not {FORMAT_VERSION}",
            "rebuild the index with this embedops version",
        )
    return meta
