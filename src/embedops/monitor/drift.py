"""Embedding drift: is a window of new vectors distributed like a reference window?

Five complementary signals, each cheap on a few thousand vectors:
- centroid cosine shift (the mean direction moved),
- MMD with an RBF kernel and a permutation p-value (any change of distribution),
- the share of the top PCA components (of both windows pooled) whose 1-D Wasserstein distance,
  in units of that component's standard deviation, exceeds a threshold (which directions moved),
- PSI of the vector-norm distribution (the scale moved),
- the shift in the out-of-vocabulary / unknown-token rate (the text itself changed).
Drift is flagged when any signal crosses its threshold; the report says which. The centroid
shift only counts when the mean difference is also well above its sampling noise.

Small windows are noisy: two random halves of 150 real MiniLM vectors (revdict definitions)
differ by up to 0.29 standard deviations (Wasserstein) along a top component, and two samples
of 75 texts by a PSI near 0.25. So the
Wasserstein and PSI thresholds used are the configured ones or the sampling-noise floor,
whichever is higher: ``noise_factor * sqrt(1/nr + 1/nc)`` for W1/σ, and the 99th percentile
of the PSI's null distribution, ``chi2_99(bins − 1) * (1/nr + 1/nc)``. With windows of a
thousand or more the configured thresholds apply unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from embedops.errors import DimensionMismatch, InvalidInput


@dataclass(frozen=True)
class DriftConfig:
    """Thresholds and sampling of a drift check; round-trips through ``DriftConfig(**d)``."""

    centroid_shift: float = 0.02
    centroid_noise_ratio: float = 4.0
    mmd_pvalue: float = 0.01
    wasserstein: float = 0.2
    component_share: float = 0.2
    psi: float = 0.2
    oov_shift: float = 0.05
    n_components: int = 10
    permutations: int = 200
    max_sample: int = 1500
    psi_bins: int = 10
    seed: int = 0
    noise_factor: float = 3.0

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not np.isfinite(value):
                raise InvalidInput(f"drift setting {name} must be a finite number, got {value!r}")
        if self.permutations > 10_000 or self.max_sample > 100_000 or self.n_components > 1000 \
                or self.psi_bins > 1000:
            raise InvalidInput("permutations <= 10000, max_sample <= 100000, n_components <= "
                               "1000 and psi_bins <= 1000 are the limits")
        if self.permutations < 20:
            raise InvalidInput(f"permutations must be >= 20, got {self.permutations}")
        if self.noise_factor < 0:
            raise InvalidInput(f"noise_factor must be >= 0, got {self.noise_factor}")
        if self.max_sample < 20 or self.n_components < 1 or self.psi_bins < 2:
            raise InvalidInput("max_sample >= 20, n_components >= 1 and psi_bins >= 2 are needed")


@dataclass(frozen=True)
class DriftReport:
    """Every signal, its threshold, and whether drift was flagged (``reasons`` say why)."""

    n_reference: int
    n_current: int
    centroid_shift: float
    centroid_noise_ratio: float
    mmd: float
    mmd_pvalue: float
    component_wasserstein: list[float]
    component_share: float
    norm_psi: float
    oov_shift: float | None
    drifted: bool
    reasons: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    wasserstein_threshold: float = 0.0
    psi_threshold: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def detect_drift(
    reference: np.ndarray,
    current: np.ndarray,
    config: DriftConfig | None = None,
    reference_oov_rate: float | None = None,
    current_oov_rate: float | None = None,
) -> DriftReport:
    """Compare ``current`` vectors with ``reference`` vectors (rows are items)."""
    config = config or DriftConfig()
    ref, cur = _check(reference, "reference"), _check(current, "current")
    if ref.shape[1] != cur.shape[1]:
        raise DimensionMismatch(
            f"reference vectors have dim {ref.shape[1]}, current vectors dim {cur.shape[1]}",
            "compare vectors of the same model version (or align them first)",
        )
    rng = np.random.default_rng(config.seed)
    ref_s, cur_s = _sample(ref, config.max_sample, rng), _sample(cur, config.max_sample, rng)
    shift = centroid_shift(ref, cur)
    noise_ratio = centroid_noise(ref, cur)
    mmd, pvalue = mmd_permutation_test(ref_s, cur_s, config.permutations, rng)
    w_limit, psi_limit = noise_floors(config, len(ref), len(cur))
    dists = component_wasserstein(ref, cur, config.n_components)
    share = float(np.mean(np.asarray(dists) > w_limit)) if dists else 0.0
    psi = population_stability(np.linalg.norm(ref, axis=1), np.linalg.norm(cur, axis=1),
                               psi_bins(config, len(ref), len(cur)))
    oov = None
    if reference_oov_rate is not None and current_oov_rate is not None:
        oov = float(current_oov_rate - reference_oov_rate)
    reasons = _reasons(config, shift if noise_ratio > config.centroid_noise_ratio else 0.0,
                       pvalue, share, psi, oov, psi_limit)
    return DriftReport(
        n_reference=len(ref), n_current=len(cur), centroid_shift=shift,
        centroid_noise_ratio=noise_ratio, mmd=mmd,
        mmd_pvalue=pvalue, component_wasserstein=dists, component_share=share, norm_psi=psi,
        oov_shift=oov, drifted=bool(reasons), reasons=reasons, config=asdict(config),
        wasserstein_threshold=w_limit, psi_threshold=psi_limit,
    )


def noise_floors(config: DriftConfig, n_reference: int, n_current: int) -> tuple[float, float]:
    """The Wasserstein (W1/σ) and PSI thresholds in force for windows of these sizes: the
    configured ones, raised to the sampling-noise floor of small windows."""
    from scipy.stats import chi2

    inv = 1.0 / n_reference + 1.0 / n_current
    w_floor = config.noise_factor * float(np.sqrt(inv))
    psi_floor = float(chi2.ppf(0.99, psi_bins(config, n_reference, n_current) - 1)) * inv
    return max(config.wasserstein, w_floor), max(config.psi, psi_floor)


def _reasons(
    config: DriftConfig, shift: float, pvalue: float, share: float, psi: float,
    oov: float | None, psi_limit: float,
) -> list[str]:
    checks = [
        (shift > config.centroid_shift,
         f"centroid moved by {shift:.4f} (> {config.centroid_shift})"),
        (pvalue < config.mmd_pvalue, f"MMD permutation p = {pvalue:.4f} (< {config.mmd_pvalue})"),
        (share > config.component_share,
         f"{share:.0%} of top PCA components moved (> {config.component_share:.0%})"),
        (psi > psi_limit, f"norm PSI {psi:.3f} (> {psi_limit:.3f})"),
        (oov is not None and abs(oov) > config.oov_shift,
         f"OOV rate changed by {oov if oov is not None else 0:+.3f} (> {config.oov_shift})"),
    ]
    return [text for flagged, text in checks if flagged]


def _check(x: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or len(arr) < 2:
        raise InvalidInput(
            f"{name} must be a 2-D array with at least 2 rows, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise InvalidInput(f"{name} vectors contain NaN or infinite values")
    return arr


def _sample(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return x if len(x) <= n else x[rng.choice(len(x), n, replace=False)]


def centroid_shift(reference: np.ndarray, current: np.ndarray) -> float:
    """1 − cosine between the mean vectors of the two windows (0 = same direction)."""
    a, b = reference.mean(axis=0), current.mean(axis=0)
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    return 0.0 if denom == 0 else float(1.0 - np.dot(a, b) / denom)


def centroid_noise(reference: np.ndarray, current: np.ndarray) -> float:
    """Squared distance between the window means over its expectation under no drift
    (``tr(Σr)/nr + tr(Σc)/nc``): near 1 for two samples of one distribution. A centroid shift
    is only flagged when this is large, so near-zero means of isotropic data don't alarm."""
    diff = reference.mean(axis=0) - current.mean(axis=0)
    expected = reference.var(axis=0).sum() / len(reference) + current.var(axis=0).sum() / len(
        current
    )
    return float(diff @ diff / expected) if expected > 0 else 0.0


def mmd_permutation_test(
    x: np.ndarray, y: np.ndarray, permutations: int, rng: np.random.Generator
) -> tuple[float, float]:
    """Unbiased squared MMD with an RBF kernel (median-distance bandwidth) and its p-value."""
    pooled = np.vstack([x, y])
    sq = np.sum(pooled**2, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * pooled @ pooled.T, 0.0)
    upper = d2[np.triu_indices_from(d2, k=1)]
    bandwidth = float(np.median(upper)) or 1.0
    kernel = np.exp(-d2 / bandwidth)
    n = len(x)
    observed = _mmd2(kernel, np.arange(len(pooled)) < n)
    exceed = 0
    for _ in range(permutations):
        mask = np.zeros(len(pooled), dtype=bool)
        mask[rng.choice(len(pooled), n, replace=False)] = True
        exceed += _mmd2(kernel, mask) >= observed
    return float(observed), float((exceed + 1) / (permutations + 1))


def _mmd2(kernel: np.ndarray, in_x: np.ndarray) -> float:
    kx, ky = kernel[np.ix_(in_x, in_x)], kernel[np.ix_(~in_x, ~in_x)]
    kxy = kernel[np.ix_(in_x, ~in_x)]
    m, n = len(kx), len(ky)
    xx = (kx.sum() - np.trace(kx)) / (m * (m - 1))
    yy = (ky.sum() - np.trace(ky)) / (n * (n - 1))
    return float(xx + yy - 2 * kxy.mean())


def component_wasserstein(reference: np.ndarray, current: np.ndarray, n: int) -> list[float]:
    """Wasserstein-1 distance along each of the top ``n`` principal components of both windows
    pooled, divided by the pooled standard deviation along it.

    Pooled rather than reference-only components: on a small reference window the top
    components of the reference alone fit its own noise, so any other sample looks narrower
    along them (two halves of 150 MiniLM vectors then differed by 0.32σ instead of 0.29σ), and
    a new cluster in the current window is itself a top pooled direction."""
    from scipy.stats import wasserstein_distance

    pooled = np.vstack([reference, current])
    mean = pooled.mean(axis=0)
    _, _, vt = np.linalg.svd(pooled - mean, full_matrices=False)
    comps = vt[: min(n, vt.shape[0])]
    ref_p, cur_p = (reference - mean) @ comps.T, (current - mean) @ comps.T
    scales = ((pooled - mean) @ comps.T).std(axis=0)
    return [float(wasserstein_distance(ref_p[:, j], cur_p[:, j]) / (float(scales[j]) or 1.0))
            for j in range(comps.shape[0])]


def psi_bins(config: DriftConfig, n_reference: int, n_current: int) -> int:
    """Bins of the norm PSI: ``config.psi_bins``, fewer for small windows (about ten items a
    bin), so that empty bins do not dominate the index."""
    return max(2, min(config.psi_bins, min(n_reference, n_current) // 10))


def population_stability(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """PSI of ``current`` against ``reference`` over the reference's quantile bins (counts
    smoothed by half an item, so an empty bin costs a bounded amount)."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        return 0.0
    edges[0], edges[-1] = -np.inf, np.inf
    p = np.histogram(reference, edges)[0] + 0.5
    q = np.histogram(current, edges)[0] + 0.5
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum((q - p) * np.log(q / p)))
