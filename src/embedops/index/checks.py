"""Input checks every backend shares: metric names, ``k``, vectors, queries and ids.

The common input (a C-contiguous float32 array of the right width) passes with a few type and
shape tests and one reduction, because search is the hot path; anything else is converted or
refused with an error that says what was wrong.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from embedops.errors import DimensionMismatch, InvalidInput
from embedops.index.protocol import F32, IdArray

METRICS = ("cosine", "ip", "l2")
F32_DTYPE = np.dtype(np.float32)
_INTEGERS = (int, np.integer)


def is_int(value: Any) -> bool:
    """True for an int or a numpy integer (never a bool)."""
    return type(value) is int or (not isinstance(value, bool) and isinstance(value, _INTEGERS))


def check_k(k: Any) -> int:
    """``k`` as an int, or InvalidInput unless it is a positive integer."""
    if not is_int(k) or k <= 0:
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


def as_rows(vectors: Any, dim: int, what: str) -> F32:
    """``vectors`` as FAISS takes them: as given when they already are (the common case),
    else converted by ``coerce_rows``."""
    if (
        type(vectors) is np.ndarray
        and vectors.dtype is F32_DTYPE
        and vectors.ndim == 2
        and vectors.shape[1] == dim
        and vectors.flags.c_contiguous
    ):
        return vectors
    return coerce_rows(vectors, dim, what)


def coerce_rows(vectors: Any, dim: int, what: str) -> F32:
    """Any array-like of numbers as a C-contiguous float32 (n, dim) array, or a clear error."""
    arr = np.asarray(vectors)
    if arr.ndim == 1 and arr.size == dim:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        raise InvalidInput(f"{what}s must be a 2-D array (n, {dim}), got {arr.shape}")
    if arr.shape[1] != dim:
        raise DimensionMismatch(
            f"{what}s have dimension {arr.shape[1]} but the index has dimension {dim}",
            "encode with the model version the index was built with, or rebuild the index",
        )
    if arr.dtype.kind not in "fiu":
        raise InvalidInput(f"{what}s must be numeric, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def check_vectors(vectors: Any, dim: int, metric: str, what: str = "vector") -> F32:
    """Checked float32 rows, l2-normalized (in a copy) for ``cosine``; NaN or infinite rows
    are an InvalidInput that names them."""
    arr = as_rows(vectors, dim, what)
    if metric == "cosine":
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


def check_queries(queries: Any, dim: int, metric: str) -> tuple[F32, Any]:
    """Checked queries and, for cosine, the factor that turns their scores into cosines.

    Queries are not normalized for cosine: the stored vectors are, so scaling a query
    changes every score of its row by the same factor and no ranking (flat, HNSW, IVF
    and PQ all rank by inner products), so the scores are divided by the norm afterwards.
    That is one reduction per query instead of a copy, a normalization and a check.
    """
    arr = as_rows(queries, dim, "query")
    if metric != "cosine":
        if not math.isfinite(float(arr.sum())):
            check_vectors(arr, dim, metric, "query")  # finds the bad rows (or a mere overflow)
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
    return check_vectors(arr, dim, metric, "query"), None


def check_ids(ids: Any, n: int | None) -> IdArray:
    """``ids`` as a 1-D int64 array of ids ``>= 0`` (``n`` of them unless None)."""
    arr = np.asarray(ids)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise InvalidInput(f"ids must be a 1-D integer array, got {arr.dtype} {arr.shape}")
    ids64 = arr.astype(np.int64)
    if n is not None and len(ids64) != n:
        raise InvalidInput(f"{len(ids64)} ids given for {n} vectors", "pass one id per row")
    if len(ids64) and ids64.min() < 0:
        raise InvalidInput("ids must be >= 0 (-1 marks empty result slots)")
    return ids64


def check_unique(ids: IdArray) -> None:
    """InvalidInput when one batch gives the same id twice."""
    uniq, counts = np.unique(ids, return_counts=True)
    if len(uniq) != len(ids):
        dups = uniq[counts > 1][:5].tolist()
        raise InvalidInput(f"duplicate ids in one batch: {dups}", "give every vector its own id")


def check_search_knobs(
    kind: str, knobs: dict[str, tuple[int, int]], search_params: Any
) -> dict[str, int]:
    """Per-call knobs checked against ``knobs`` (name -> (lowest, highest)) of backend ``kind``:
    ``{}`` for None, else an int per name, or InvalidInput naming what is allowed."""
    if not search_params:
        return {}
    if not isinstance(search_params, dict):
        raise InvalidInput(f"search_params must be a mapping, got {type(search_params).__name__}")
    allowed = ", ".join(knobs) or "none"
    out = {}
    for name, value in search_params.items():
        if name not in knobs:
            raise InvalidInput(
                f"'{name}' is not a search parameter of the {kind} index",
                f"{kind} accepts: {allowed}",
            )
        low, high = knobs[name]
        if not is_int(value) or not low <= value <= high:
            raise InvalidInput(
                f"{kind} search parameter {name} must be an integer in {low}..{high}, "
                f"got {value!r}"
            )
        out[name] = int(value)
    return out
