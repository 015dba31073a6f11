"""Shared fixtures: every test gets its own workspace; nothing touches ./embedops-data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from embedops.config import HOME_ENV, Workspace
from embedops.models.registry import Registry

# pytest runs one worker per core (-n 2): more than one intra-op thread per worker oversubscribes
# the cores, and OpenMP's spin-waiting then makes torch/onnxruntime tests ~20x slower.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

# Property tests draw the same examples on every run ("ci", the default), so a suite that passed
# passes again: two suite runs turned red on cases random draws found for the first time (a real
# normalize bug, fixed and kept as an @example; a tiny ivfpq set under the recall bound). To
# look for new ones, run with `--hypothesis-profile explore` (random draws, more examples) and
# keep what it finds.
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", max_examples=500)
settings.load_profile(os.environ.get("EMBEDOPS_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """A fresh workspace, also exported as $EMBEDOPS_HOME for CLI calls."""
    ws = Workspace(tmp_path / "ws").ensure()
    monkeypatch.setenv(HOME_ENV, str(ws.home))
    monkeypatch.setenv("EMBEDOPS_QUIET", "1")
    return ws


@pytest.fixture
def registry(workspace: Workspace) -> Registry:
    return Registry(workspace)


@pytest.fixture(scope="session")
def lee_corpus() -> Path:
    """gensim's bundled Lee background corpus (real English news text, ~300 documents)."""
    from gensim.test.utils import datapath

    return Path(datapath("lee_background.cor"))
