"""Shared fixtures: every test gets its own workspace; nothing touches ./embedops-data."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
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


@pytest.fixture(autouse=True)
def _priority_kept() -> Iterator[None]:
    """No test may leave pytest's own thread at another CPU priority: every later test on the
    worker, and every process those start, would inherit it (a README walk-through at niceness
    10 beside a busy worker at 0 ran past its timeout that way). Restored, then reported."""
    if not sys.platform.startswith("linux"):
        yield
        return
    tid = threading.get_native_id()
    before = (os.getpriority(os.PRIO_PROCESS, tid), os.sched_getscheduler(tid))
    yield
    after = (os.getpriority(os.PRIO_PROCESS, tid), os.sched_getscheduler(tid))
    if after != before:
        try:  # allowed as root (CI); elsewhere the report alone
            os.sched_setscheduler(tid, before[1], os.sched_param(0))
            os.setpriority(os.PRIO_PROCESS, tid, before[0])
        except OSError:
            pass
        pytest.fail(f"the test left pytest's thread at (niceness, policy) {after}, was {before}: "
                    "run niced work on a thread of its own (lifecycle.worker.at_priority)")


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
