"""Torture: SIGKILL at a random point of ``embedops ingest``, ``embedops index build`` and
``embedops rollout start`` (real subprocesses), then run the command again (issue 21, item 7).

Afterwards every item is stored exactly once (one row, one vector per model version, one
lineage row), the served index holds exactly the catalog's items (``check_index``), searches
return ``k`` hits, and every snapshot left on disk passes ``index verify``. The kill points are
drawn from a seeded generator (the seed is in the test id): ``$EMBEDOPS_TORTURE_KILLS`` rounds
per command (default 1; ``make soak`` runs many).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from torture_helpers import publish_tiny, texts

from embedops.config import Workspace
from embedops.engine import Embedops
from embedops.lifecycle.rollout import BACKFILLING, RolloutStore

N = 3000
K = 10
ROUNDS = int(os.environ.get("EMBEDOPS_TORTURE_KILLS", "1"))
SEEDS = [1000 + i for i in range(ROUNDS)]


def _count(db: Path, sql: str) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def _cli(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "embedops.cli.main", "--quiet", *args]


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "EMBEDOPS_HOME": str(home), "EMBEDOPS_QUIET": "1"}


def _kill_when(cmd: list[str], home: Path, ready: Callable[[], bool], delay: float) -> int:
    """Start ``cmd``; once ``ready()`` holds, wait ``delay`` s and SIGKILL it (unless it ended
    first). Returns its exit status."""
    proc = subprocess.Popen(cmd, env=_env(home), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while proc.poll() is None and not ready():
        assert time.monotonic() < deadline, "the command never reached its kill window"
        time.sleep(0.005)
    time.sleep(delay)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.read() if proc.stderr else ""
    return int(proc.returncode)


def _run(home: Path, *args: str) -> str:
    done = subprocess.run(_cli(home, *args), env=_env(home), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A workspace with two models, and a JSONL file of ``N`` items."""
    root = tmp_path_factory.mktemp("kill9")
    ws = publish_tiny(root / "ws")
    publish_tiny(ws.home, "tiny2", dim=12, seed=8)
    source = root / "items.jsonl"
    source.write_text("".join(json.dumps({"id": f"i{i}", "text": t, "n": i}) + "\n"
                              for i, t in enumerate(texts(N, 3))))
    return ws.home, source


def _copy(base: tuple[Path, Path], tmp_path: Path) -> Workspace:
    shutil.copytree(base[0], tmp_path / "ws")
    return Workspace(tmp_path / "ws")


def _exactly_once(ws: Workspace, versions: tuple[str, ...]) -> None:
    db = ws.catalog_path
    assert _count(db, "SELECT COUNT(*) FROM items") == N
    assert _count(db, "SELECT COUNT(DISTINCT item_id) FROM items") == N
    assert _count(db, "SELECT COUNT(*) FROM lineage") == N
    for version in versions:
        assert _count(db, f"SELECT COUNT(*) FROM vectors WHERE model_version = '{version}'") == N


def _served_right(ws: Workspace, version: str | None = None) -> None:
    with Embedops(ws) as api:
        check = api.check_index("docs", version)
        assert check is None or check["state"] == "consistent", check
        hits = api.search("docs", "apple banana cherry", k=K, model_version=version).hits
        assert len(hits) == K
        check = api.check_index("docs", version)
        assert check is not None and check["state"] == "consistent", check
        bad = [c for c in api.verify_index("docs", version) if not c.ok]
        assert bad == []


def _fill(ws: Workspace, source: Path) -> None:
    with Embedops(ws) as api:
        api.collections.create("docs", model="tiny")
        api.ingest("docs", source, quiet=True)
        api.build_index("docs", "flat", quiet=True)


@pytest.mark.parametrize("seed", SEEDS)
def test_kill9_during_ingest(base: tuple[Path, Path], tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ws = _copy(base, tmp_path)
    with Embedops(ws) as api:
        api.collections.create("docs", model="tiny")
    at = int(rng.integers(1, N))
    cmd = _cli(ws.home, "ingest", "docs", str(base[1]), "--batch-size", "50")
    _kill_when(cmd, ws.home, lambda: _count(ws.catalog_path,
                                            "SELECT COUNT(*) FROM items") >= at, 0.0)
    report = json.loads(_run(ws.home, "ingest", "docs", str(base[1]), "--json"))
    assert report["unchanged"] + report["embedded"] == N
    _exactly_once(ws, ("tiny@1",))
    _served_right(ws)


@pytest.mark.parametrize("seed", SEEDS)
def test_kill9_during_index_build(base: tuple[Path, Path], tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ws = _copy(base, tmp_path)
    _fill(ws, base[1])
    root = ws.snapshot_root("docs", "tiny@1")
    before = {p.name for p in root.iterdir()}

    def building() -> bool:  # the build has begun writing (staging) or published already
        return (root / ".staging").exists() and any((root / ".staging").iterdir()) or \
            {p.name for p in root.iterdir()} != before

    cmd = _cli(ws.home, "index", "build", "docs", "--kind", "hnsw")
    _kill_when(cmd, ws.home, building, float(rng.uniform(0.0, 0.05)))
    _served_right(ws)
    _run(ws.home, "index", "build", "docs", "--kind", "hnsw")
    _exactly_once(ws, ("tiny@1",))
    _served_right(ws)


@pytest.mark.parametrize("seed", SEEDS)
def test_kill9_during_rollout_start(base: tuple[Path, Path], tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ws = _copy(base, tmp_path)
    _fill(ws, base[1])
    at = int(rng.integers(1, N))
    cmd = _cli(ws.home, "rollout", "start", "docs", "--model", "tiny2")
    sql = "SELECT COUNT(*) FROM vectors WHERE model_version = 'tiny2@1'"
    _kill_when(cmd, ws.home, lambda: _count(ws.catalog_path, sql) >= at,
               float(rng.uniform(0.0, 0.2)))
    state = RolloutStore(ws).get("docs")
    assert state is not None
    if state.phase == BACKFILLING:
        _run(ws.home, "rollout", "start", "docs", "--model", "tiny2")
    assert RolloutStore(ws).require("docs").phase != BACKFILLING
    _exactly_once(ws, ("tiny@1", "tiny2@1"))
    _served_right(ws)
    _served_right(ws, "tiny2@1")
