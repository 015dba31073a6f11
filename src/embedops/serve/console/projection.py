"""The 2-D map of a collection: a bounded, deterministic sample of its items, projected with
PCA (numpy SVD; UMAP when ``umap-learn`` is installed and asked for), coloured by a metadata
field, with an optional drift window drawn over it on the same axes.

The sample is at most ``MAX_POINTS`` items and each hover text at most ``HOVER_CHARS``
characters, so the page stays around a megabyte whatever the collection's size (100k items
or 10M: only the sampled ids' vectors and texts are read).
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np

from embedops.errors import EmbedopsError, InvalidInput
from embedops.serve.console.charts import label

MAX_POINTS = 5000
DEFAULT_POINTS = 2000
MAX_CATEGORIES = 12
HOVER_CHARS = 120
METHODS = ("pca", "umap")


@dataclass(frozen=True)
class Projector:
    """A fitted 2-D projection: ``apply`` maps more vectors onto the same axes (PCA only)."""

    mean: np.ndarray | None
    basis: np.ndarray | None
    explained: tuple[float, float] | None

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        if self.basis is None or self.mean is None:
            raise InvalidInput("a drift window can only be drawn on a PCA map",
                               "pick the PCA method for an overlay")
        with one_blas_thread():
            return np.asarray((vectors - self.mean) @ self.basis, dtype=np.float64)


def sample(ids: Sequence[str], n: int, seed: int = 0) -> list[str]:
    """``n`` of ``ids`` drawn without replacement (all when fewer), in their stored order."""
    if len(ids) <= n:
        return list(ids)
    chosen = np.sort(np.random.default_rng(seed).choice(len(ids), n, replace=False))
    return [ids[i] for i in chosen]


def one_blas_thread() -> AbstractContextManager[Any]:
    """BLAS limited to one thread for the duration (threadpoolctl). A page must not spread
    over every core: measured on a loaded 2-core machine, a two-thread OpenBLAS SVD of
    2,000 x 100 took 1.5-6 s against 65 ms on one thread."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a core dependency; only slower without it
        return contextlib.nullcontext()
    limits: AbstractContextManager[Any] = threadpool_limits(limits=1, user_api="blas")
    return limits


def pca(vectors: np.ndarray) -> tuple[np.ndarray, Projector]:
    """The first two principal components of ``vectors`` and the fitted projector (the
    eigenvectors of the d x d scatter matrix: cheaper than an SVD of the n x d sample)."""
    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim != 2 or len(x) < 2:
        raise InvalidInput(f"a map needs at least 2 vectors, got {len(x)}")
    mean = x.mean(axis=0)
    centred = x - mean
    with one_blas_thread():
        values, vecs = np.linalg.eigh((centred.T @ centred).astype(np.float64))
        order = np.argsort(values)[::-1]
        basis = vecs[:, order[:2]].astype(np.float32)
        if basis.shape[1] < 2:
            basis = np.pad(basis, ((0, 0), (0, 2 - basis.shape[1])))
        coords = centred @ basis
    total = float(values.clip(min=0).sum()) or 1.0
    parts = [float(max(values[i], 0.0)) / total for i in order[:2]] + [0.0, 0.0]
    return coords.astype(np.float64), Projector(mean, basis, (parts[0], parts[1]))


def umap_2d(vectors: np.ndarray) -> tuple[np.ndarray, Projector]:
    """UMAP of ``vectors`` to 2-D (``umap-learn`` must be installed)."""
    try:
        import umap
    except ImportError:
        raise EmbedopsError("UMAP needs the 'umap-learn' package, which is not installed",
                            "pip install umap-learn, or use PCA") from None
    reducer = umap.UMAP(n_components=2, random_state=0)
    return np.asarray(reducer.fit_transform(vectors), dtype=np.float64), Projector(None, None,
                                                                                   None)


def project(vectors: np.ndarray, method: str) -> tuple[np.ndarray, Projector]:
    """2-D coordinates of ``vectors`` by ``method`` (pca or umap)."""
    return umap_2d(vectors) if method == "umap" else pca(vectors)


def fields(metadata: Sequence[dict[str, Any]]) -> list[str]:
    """Metadata fields with scalar values in the sample, by name (what can colour points)."""
    names: set[str] = set()
    for meta in metadata:
        names.update(k for k, v in meta.items() if isinstance(v, str | int | float | bool))
    return sorted(names)


def _numeric(values: Sequence[Any]) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(isinstance(v, int | float) and not isinstance(v, bool)
                                 and math.isfinite(v) for v in present) \
        and len(set(present)) > MAX_CATEGORIES


def _hover(item_id: str, text: str) -> str:
    return f"{label(item_id, 40)}<br>{label(text, HOVER_CHARS)}"


def traces(coords: np.ndarray, ids: Sequence[str], texts: Sequence[str],
           metadata: Sequence[dict[str, Any]], field: str | None) -> list[dict[str, Any]]:
    """Scatter traces of the sample: one per category of ``field`` (the most frequent
    ``MAX_CATEGORIES``, then "other"), one coloured by value when the field is numeric, or a
    single trace when no field is chosen."""
    xs = [round(float(v), 4) for v in coords[:, 0]]
    ys = [round(float(v), 4) for v in coords[:, 1]]
    hover = [_hover(i, t) for i, t in zip(ids, texts, strict=True)]
    if not field:
        return [{"name": "items", "x": xs, "y": ys, "text": hover}]
    values = [meta.get(field) for meta in metadata]
    if _numeric(values):
        keep = [i for i, v in enumerate(values) if v is not None]
        return [{"name": field, "x": [xs[i] for i in keep], "y": [ys[i] for i in keep],
                 "text": [hover[i] for i in keep], "color": [values[i] for i in keep],
                 "color_title": field}]
    names = ["(none)" if v is None else str(v) for v in values]
    top = [name for name, _ in Counter(names).most_common(MAX_CATEGORIES)]
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        groups.setdefault(name if name in top else "other", []).append(i)
    return [{"name": f"{field}={name}", "x": [xs[i] for i in rows], "y": [ys[i] for i in rows],
             "text": [hover[i] for i in rows]} for name, rows in groups.items()]
