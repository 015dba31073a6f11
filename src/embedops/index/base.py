"""The Index contract shared by every ANN backend, and the checks every backend needs.

An index maps int64 ids (>= 0) to vectors of one dimension and answers
``search(queries, k) -> (ids, scores)``: ids ``(m, k)`` int64 padded with ``-1`` when fewer than
``k`` items exist, scores ``(m, k)`` float32 where **higher is better for every metric**:

* ``cosine`` - vectors and queries are l2-normalized, score = cosine similarity;
* ``ip`` - score = inner product;
* ``l2`` - score = minus the *squared* euclidean distance.

Padding rows carry score ``-inf``. Backends subclass :class:`FaissIndex` and fill in a few hooks;
the validation, metric handling and file layout live here, so every backend behaves the same.
"""

from __future__ import annotations

import json
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

    def search(self, queries: np.ndarray, k: int) -> tuple[IdArray, F32]:
        """The ``k`` best ids and scores for each query row (see the module docstring)."""
        q = self._check_vectors(queries, "query")
        if isinstance(k, bool) or not isinstance(k, _INTEGERS) or k <= 0:
            raise InvalidInput(f"k must be a positive integer, got {k!r}")
        k = int(k)
        if self.count == 0 or len(q) == 0:
            return pad(np.empty((len(q), 0), np.int64), np.empty((len(q), 0), np.float32), k)
        with self._lock:
            if self.count == 0:
                return pad(np.empty((len(q), 0), np.int64), np.empty((len(q), 0), np.float32), k)
            ids, scores = self._search(q, min(k, self.count))
        return pad(ids, scores, k)

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
    def _check_vectors(self, vectors: np.ndarray, what: str = "vector") -> F32:
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
        out = np.ascontiguousarray(arr, dtype=np.float32)
        # one reduction for the common case; the row-wise check runs only when it fails
        if not np.isfinite(out.sum()) and not np.isfinite(out).all():
            bad = ~np.isfinite(out).all(axis=1)
            rows = np.flatnonzero(bad)[:5].tolist()
            raise InvalidInput(
                f"{int(bad.sum())} {what}(s) contain NaN or infinite values (rows {rows})",
                "fix or drop those rows before indexing",
            )
        if self.metric != "cosine":
            return out  # FAISS copies what it keeps, so the caller's array is never changed
        import faiss

        out = out.copy() if np.may_share_memory(out, arr) else out
        faiss.normalize_L2(out)  # in place; all-zero rows stay zero
        return out

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

    def _search(self, q: F32, k: int) -> tuple[IdArray, F32]:
        raise self._missing_hook("_search")

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
