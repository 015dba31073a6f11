"""A self-contained HTML drift report with hand-written inline SVG plots (no plotting library):
norm distributions, distributions along the reference's top principal components, and a PCA
scatter of reference vs current."""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any

import numpy as np

from embedops.fsio import atomic_write_bytes
from embedops.monitor.drift import DriftReport

W, H, PAD = 360, 200, 28
COLORS = {"reference": "#1f77b4", "current": "#d62728"}
SCATTER_POINTS = 400


def _scale(values: np.ndarray, low: float, high: float, out_low: float, out_high: float
           ) -> np.ndarray:
    span = (high - low) or 1.0
    return out_low + (values - low) / span * (out_high - out_low)


def _frame(title: str, body: str) -> str:
    return (f'<figure><svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
            f'viewBox="0 0 {W} {H}"><rect width="{W}" height="{H}" fill="white" '
            f'stroke="#ccc"/>{body}</svg><figcaption>{html.escape(title)}</figcaption></figure>')


def histogram_svg(title: str, reference: np.ndarray, current: np.ndarray, bins: int = 30) -> str:
    """Overlaid density histograms (step lines) of two 1-D samples."""
    low = float(min(reference.min(), current.min()))
    high = float(max(reference.max(), current.max()))
    edges = np.linspace(low, high if high > low else low + 1.0, bins + 1)
    dens = {name: np.histogram(v, edges, density=True)[0]
            for name, v in (("reference", reference), ("current", current))}
    top = max(float(d.max()) for d in dens.values()) or 1.0
    xs = _scale(edges, edges[0], edges[-1], PAD, W - 8)
    parts = []
    for name, d in dens.items():
        ys = _scale(d, 0, top, H - PAD, 12)
        points = [f"{xs[0]:.1f},{H - PAD}"]
        for i, y in enumerate(ys):
            points += [f"{xs[i]:.1f},{y:.1f}", f"{xs[i + 1]:.1f},{y:.1f}"]
        points.append(f"{xs[-1]:.1f},{H - PAD}")
        parts.append(f'<polyline fill="none" stroke="{COLORS[name]}" stroke-width="1.5" '
                     f'points="{" ".join(points)}"><title>{name}</title></polyline>')
    parts.append(f'<text x="{PAD}" y="{H - 8}" font-size="10">{low:.3g}</text>'
                 f'<text x="{W - 60}" y="{H - 8}" font-size="10">{high:.3g}</text>')
    return _frame(title, "".join(parts))


def scatter_svg(title: str, reference: np.ndarray, current: np.ndarray) -> str:
    """2-D scatter of two point clouds (rows of ``(n, 2)`` arrays)."""
    both = np.vstack([reference, current])
    lo, hi = both.min(axis=0), both.max(axis=0)
    parts = []
    for name, pts in (("reference", reference), ("current", current)):
        xs = _scale(pts[:, 0], lo[0], hi[0], PAD, W - 8)
        ys = _scale(pts[:, 1], lo[1], hi[1], H - PAD, 12)
        parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="1.8" fill="{COLORS[name]}" '
                  f'fill-opacity="0.5"/>' for x, y in zip(xs, ys, strict=True)]
    return _frame(title, "".join(parts))


def _pca(reference: np.ndarray, current: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    mean = reference.mean(axis=0)
    _, _, vt = np.linalg.svd(reference - mean, full_matrices=False)
    comps = vt[:n]
    return (reference - mean) @ comps.T, (current - mean) @ comps.T


def _sample(x: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    if len(x) <= n:
        return x
    return x[np.random.default_rng(seed).choice(len(x), n, replace=False)]


def _summary_rows(report: DriftReport) -> str:
    cfg = report.config
    rows = [
        ("items (reference / current)", f"{report.n_reference} / {report.n_current}", ""),
        ("centroid shift (1 − cos)", f"{report.centroid_shift:.4f}",
         f"> {cfg.get('centroid_shift')} and noise ratio > {cfg.get('centroid_noise_ratio')} "
         f"(now {report.centroid_noise_ratio:.2f})"),
        ("MMD² (RBF)", f"{report.mmd:.5f}",
         f"p = {report.mmd_pvalue:.4f} < {cfg.get('mmd_pvalue')}"),
        ("PCA components moved", f"{report.component_share:.0%}",
         f"> {cfg.get('component_share')} (W1/σ > {report.wasserstein_threshold:.3f})"),
        ("norm PSI", f"{report.norm_psi:.4f}", f"> {report.psi_threshold:.3f}"),
        ("OOV rate shift", "n/a" if report.oov_shift is None else f"{report.oov_shift:+.4f}",
         f"|·| > {cfg.get('oov_shift')}"),
    ]
    return "".join(f"<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td>"
                   f"<td>{html.escape(c)}</td></tr>" for a, b, c in rows)


def render_html(report: DriftReport, reference: np.ndarray, current: np.ndarray,
                title: str = "Embedding drift report", components: int = 3) -> str:
    """The whole report as one HTML page (plots inline, nothing fetched)."""
    ref, cur = np.asarray(reference, np.float64), np.asarray(current, np.float64)
    ref_p, cur_p = _pca(ref, cur, max(2, components))
    figures = [histogram_svg("vector norm", np.linalg.norm(ref, axis=1),
                             np.linalg.norm(cur, axis=1))]
    for j in range(min(components, ref_p.shape[1])):
        dist = report.component_wasserstein[j] if j < len(report.component_wasserstein) else 0
        figures.append(histogram_svg(f"PC{j + 1} (W1/σ = {dist:.3f})", ref_p[:, j], cur_p[:, j]))
    figures.append(scatter_svg("PCA scatter (PC1 × PC2)", _sample(ref_p[:, :2], SCATTER_POINTS),
                               _sample(cur_p[:, :2], SCATTER_POINTS, 1)))
    verdict = "DRIFT" if report.drifted else "no drift"
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in report.reasons) or "<li>none</li>"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;margin:2em}}"
        "figure{display:inline-block;margin:6px}td{padding:2px 10px}"
        ".ref{color:#1f77b4}.cur{color:#d62728}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{stamp} — <b>{verdict}</b> "
        "(<span class='ref'>reference</span> vs <span class='cur'>current</span>)</p>"
        f"<ul>{reasons}</ul><table><tr><th>signal</th><th>value</th><th>flagged when</th></tr>"
        f"{_summary_rows(report)}</table>{''.join(figures)}</body></html>"
    )


def write_html(path: Path, report: DriftReport, reference: np.ndarray, current: np.ndarray,
               title: str = "Embedding drift report") -> Path:
    """Write the report atomically to ``path``; returns the path."""
    atomic_write_bytes(Path(path), render_html(report, reference, current, title).encode())
    return Path(path)


def summary_lines(report: DriftReport) -> list[str]:
    """A short text summary for the terminal."""
    head = "DRIFT" if report.drifted else "no drift"
    out: list[Any] = [
        f"{head}: {report.n_reference} reference vs {report.n_current} current vectors",
        f"  centroid shift {report.centroid_shift:.4f} (noise ratio "
        f"{report.centroid_noise_ratio:.2f}), MMD p {report.mmd_pvalue:.4f}, "
        f"PCA moved {report.component_share:.0%}, norm PSI {report.norm_psi:.3f}"
        + ("" if report.oov_shift is None else f", OOV shift {report.oov_shift:+.3f}"),
    ]
    out += [f"  - {r}" for r in report.reasons]
    return out
