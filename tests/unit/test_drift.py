"""Drift detection: synthetic shifts of each kind, noise floors, bad inputs, and real text —
revdict definitions mixed with Linux kernel documentation must drift, two random halves of the
definitions must not (MiniLM embeddings, which are anisotropic)."""

from __future__ import annotations

import json
import lzma
from pathlib import Path

import numpy as np
import pytest

from embedops.errors import DimensionMismatch, InvalidInput
from embedops.monitor.drift import DriftConfig, detect_drift, noise_floors
from embedops.monitor.report import render_html, summary_lines

SHARED = Path(__file__).resolve().parents[2].parent / "shared/data"
FAST = DriftConfig(permutations=100, max_sample=400)


def _anisotropic(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    """Like real embeddings: a common direction plus correlated noise, unit-normalized."""
    rng = np.random.default_rng(seed)
    mix = np.random.default_rng(99).normal(size=(dim, dim)) / np.sqrt(dim)
    x = 2.0 + rng.normal(size=(n, dim)) @ mix
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_same_distribution_is_not_drift() -> None:
    for seed in range(3):
        report = detect_drift(_anisotropic(300, seed=seed), _anisotropic(300, seed=seed + 10),
                              FAST)
        assert not report.drifted, report.reasons


def test_mean_shift_scale_change_and_oov_are_flagged() -> None:
    ref = _anisotropic(300)
    moved = _anisotropic(300, seed=5)
    moved[:, :4] += 0.3
    report = detect_drift(ref, moved, FAST)
    assert report.drifted and any("MMD" in r for r in report.reasons)
    scaled = detect_drift(ref, _anisotropic(300, seed=6) * 3.0, FAST)
    assert any("norm PSI" in r for r in scaled.reasons)
    oov = detect_drift(ref, _anisotropic(300, seed=7), FAST, 0.02, 0.15)
    assert oov.drifted and oov.oov_shift == pytest.approx(0.13) and "OOV" in oov.reasons[0]


def test_noise_floors_rise_for_small_windows() -> None:
    cfg = DriftConfig()
    small_w, small_psi = noise_floors(cfg, 50, 50)
    assert small_w > cfg.wasserstein and small_psi > cfg.psi
    assert noise_floors(cfg, 5000, 5000) == (cfg.wasserstein, cfg.psi)


def test_bad_inputs() -> None:
    with pytest.raises(DimensionMismatch, match="dim 32.*dim 16"):
        detect_drift(_anisotropic(20), _anisotropic(20, dim=16))
    with pytest.raises(InvalidInput, match="NaN"):
        detect_drift(np.full((5, 3), np.nan), np.ones((5, 3)))
    with pytest.raises(InvalidInput, match="at least 2 rows"):
        detect_drift(np.ones((1, 3)), np.ones((5, 3)))
    with pytest.raises(InvalidInput, match="permutations"):
        DriftConfig(permutations=5)
    for bad in ({"psi": float("nan")}, {"permutations": 10**9}, {"mmd_pvalue": "x"}):
        with pytest.raises(InvalidInput):
            DriftConfig(**bad)  # type: ignore[arg-type]
    assert DriftConfig(**DriftConfig(psi=0.3).__dict__) == DriftConfig(psi=0.3)


def test_html_report_is_self_contained() -> None:
    ref, cur = _anisotropic(120), _anisotropic(120, seed=3) * 1.5
    report = detect_drift(ref, cur, FAST)
    page = render_html(report, ref, cur, "t <x>")
    assert page.count("<svg") == 5 and "t &lt;x&gt;" in page and "http" not in page.split(
        "<svg")[0].replace("http://www.w3.org", "")
    assert summary_lines(report)[0].startswith("DRIFT")


def _linux_paragraphs(n: int) -> list[str]:
    """Prose paragraphs of the Linux kernel documentation part of the shared corpus."""
    out: list[str] = []
    started = False
    with lzma.open(SHARED / "corpus-en-13m.txt.xz", "rt", encoding="utf-8") as fh:
        for line in fh:
            if not started:
                started = line.startswith(".. SPDX-License-Identifier")
                continue
            words = line.split()
            if 15 <= len(words) <= 60 and line[0].isupper() and "==" not in line \
                    and "::" not in line:
                out.append(line.strip())
                if len(out) >= 20 * n:
                    break
    return out[::20][:n]


def _definitions(n: int) -> list[str]:
    with lzma.open(SHARED / "revdict/docs-20k.jsonl.xz", "rt", encoding="utf-8") as fh:
        texts = [json.loads(line)["text"] for line in fh]
    rng = np.random.default_rng(0)
    return [texts[i][:400] for i in rng.choice(len(texts), n, replace=False)]


@pytest.mark.slow
@pytest.mark.transformer
def test_real_text_mixed_with_kernel_docs_drifts(tmp_path_factory) -> None:
    if not (SHARED / "corpus-en-13m.txt.xz").exists():
        pytest.skip(f"the GPL test data is not shipped; {SHARED} is absent")
    from transformer_helpers import shared_encoder

    encoder = shared_encoder(tmp_path_factory, "torch")
    defs = encoder.encode(_definitions(200))
    kernel = encoder.encode(_linux_paragraphs(35))
    reference, same = defs[:100], defs[100:]
    halves = detect_drift(reference, same)
    assert not halves.drifted, halves.reasons
    mixed = detect_drift(reference, np.vstack([same[:65], kernel]))
    assert mixed.drifted and mixed.mmd_pvalue < 0.01, mixed.to_dict()
