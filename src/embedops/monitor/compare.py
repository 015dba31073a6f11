"""Comparing two model versions on the same probe set, and aligning one onto the other.

The probe is a list of texts or words embedded by both versions (rows aligned). Reported:
kNN overlap@k (do neighbourhoods survive?), the Spearman correlation of pairwise similarities
(is the geometry the same up to rotation?), and an orthogonal Procrustes map from the old
space onto the new one with its residual. The map can be saved and applied *explicitly*, so
vectors of the old version stay queryable with queries of the new one during a migration.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedops.errors import DimensionMismatch, IntegrityError, InvalidInput, VersionMismatch
from embedops.fsio import atomic_write_bytes


@dataclass(frozen=True)
class Comparison:
    """How two versions differ on one probe set."""

    version_a: str
    version_b: str
    n_probe: int
    k: int
    knn_overlap: float
    similarity_spearman: float
    procrustes_residual: float
    aligned_knn_overlap: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.asarray(x / norms)


def knn_overlap(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    """Mean share of each probe's top-``k`` cosine neighbours that both spaces agree on."""
    if k < 1 or k >= len(a):
        raise InvalidInput(f"k must be in [1, {len(a) - 1}] for a probe of {len(a)}, got {k}")
    def top(x: np.ndarray) -> np.ndarray:
        u = _unit(x)
        sims = u @ u.T
        np.fill_diagonal(sims, -np.inf)
        return np.argpartition(-sims, k, axis=1)[:, :k]
    ta, tb = top(a), top(b)
    return float(np.mean([len(set(ra) & set(rb)) / k for ra, rb in zip(ta, tb, strict=True)]))


def similarity_spearman(a: np.ndarray, b: np.ndarray, pairs: int = 20000, seed: int = 0) -> float:
    """Spearman correlation of cosine similarities over random probe pairs in both spaces."""
    from scipy.stats import spearmanr

    rng = np.random.default_rng(seed)
    i = rng.integers(0, len(a), pairs)
    j = rng.integers(0, len(a), pairs)
    keep = i != j
    ua, ub = _unit(a), _unit(b)
    sa = np.einsum("ij,ij->i", ua[i[keep]], ua[j[keep]])
    sb = np.einsum("ij,ij->i", ub[i[keep]], ub[j[keep]])
    return float(spearmanr(sa, sb).statistic)


@dataclass(frozen=True)
class AlignmentMap:
    """An orthogonal map from ``source`` version vectors into the ``target`` version space.

    ``matrix`` is (source_dim, target_dim); source vectors are unit-normalized, multiplied, and
    renormalized. Dimensions may differ (the smaller side is zero-padded before fitting).
    """

    source: str
    target: str
    matrix: np.ndarray
    residual: float

    def apply(self, vectors: np.ndarray, version: str) -> np.ndarray:
        """Map vectors of ``version`` (must be this map's source) into the target space."""
        if version != self.source:
            raise VersionMismatch(
                f"this alignment maps {self.source} → {self.target}; vectors are from {version}",
                "use the map fitted for that version pair",
            )
        if vectors.shape[1] != self.matrix.shape[0]:
            raise DimensionMismatch(
                f"{self.source} vectors should have dim {self.matrix.shape[0]}, got "
                f"{vectors.shape[1]}"
            )
        return _unit(_unit(vectors) @ self.matrix).astype(np.float32)

    def save(self, path: Path) -> None:
        """Write as safetensors (matrix) with the refs and residual in its metadata."""
        from safetensors.numpy import save as save_bytes

        meta = {"source": self.source, "target": self.target, "residual": repr(self.residual)}
        atomic_write_bytes(path, save_bytes({"matrix": self.matrix.astype(np.float32)}, meta))

    @classmethod
    def load(cls, path: Path) -> AlignmentMap:
        """Read a map written by ``save``."""
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="numpy") as fh:
                meta = fh.metadata() or {}
                matrix = fh.get_tensor("matrix")
            return cls(meta["source"], meta["target"], matrix, float(meta["residual"]))
        except (OSError, KeyError, ValueError, SafetensorError) as exc:
            raise IntegrityError(f"{path} is not a readable alignment map: {exc}") from exc


def fit_procrustes(source: np.ndarray, target: np.ndarray, source_ref: str,
                   target_ref: str) -> AlignmentMap:
    """Orthogonal Procrustes from unit ``source`` rows onto unit ``target`` rows."""
    from scipy.linalg import orthogonal_procrustes

    if len(source) != len(target):
        raise InvalidInput(f"probe rows differ: {len(source)} vs {len(target)}")
    a, b = _unit(source), _unit(target)
    dim = max(a.shape[1], b.shape[1])
    pa = np.pad(a, ((0, 0), (0, dim - a.shape[1])))
    pb = np.pad(b, ((0, 0), (0, dim - b.shape[1])))
    rotation, _ = orthogonal_procrustes(pa, pb)
    matrix = rotation[: a.shape[1], : b.shape[1]]
    mapped = _unit(a @ matrix)
    residual = float(np.mean(np.linalg.norm(mapped - b, axis=1)))
    return AlignmentMap(source_ref, target_ref, matrix.astype(np.float32), residual)


def compare_versions(a: np.ndarray, b: np.ndarray, version_a: str, version_b: str,
                     k: int = 10) -> tuple[Comparison, AlignmentMap]:
    """All comparison figures of two versions on aligned probe vectors, plus the a→b map."""
    if len(a) != len(b):
        raise InvalidInput(f"probe rows differ: {len(a)} for {version_a}, {len(b)} for {version_b}")
    alignment = fit_procrustes(a, b, version_a, version_b)
    comparison = Comparison(
        version_a=version_a, version_b=version_b, n_probe=len(a), k=k,
        knn_overlap=knn_overlap(a, b, k),
        similarity_spearman=similarity_spearman(a, b),
        procrustes_residual=alignment.residual,
        aligned_knn_overlap=knn_overlap(alignment.apply(a, version_a), b, k),
    )
    return comparison, alignment


def comparison_json(comparison: Comparison) -> str:
    """Pretty JSON of a comparison (for ``--json`` output)."""
    return json.dumps(comparison.to_dict(), indent=2)


def apply_alignment(map_path: str | Path, vectors: np.ndarray, version: str) -> np.ndarray:
    """Map ``vectors`` of model ``version`` into the space of the version a saved map targets.

    Explicit by design: vectors of an old version become comparable with queries of the new
    one only through a map fitted for that pair (``embedops compare A B --save-map PATH``);
    a map for another pair, or vectors of another dimension, are refused."""
    return AlignmentMap.load(Path(map_path)).apply(np.asarray(vectors, np.float32), version)
