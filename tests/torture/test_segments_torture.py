"""Torture: SIGKILL during ``embedops index refresh`` and ``embedops index merge`` (real
subprocesses), then restart (issue 19, item 1).

Meanwhile the previous manifest stays served; afterwards nothing is lost or duplicated: every
live item is served exactly once (the served index holds exactly the catalog's items, hits
have no duplicates and equal an exact search), every snapshot left on disk passes
``index verify``, and the command run again completes. Kill points come from a seeded
generator (the seed is in the test id); ``$EMBEDOPS_TORTURE_KILLS`` rounds per command.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from test_kill9 import _cli, _kill_when, _run  # the same subprocess and kill helpers
from torture_helpers import publish_tiny, texts

from embedops.config import Workspace
from embedops.engine import Embedops

N = 3000
NEW = 1500
K = 10
ROUNDS = int(os.environ.get("EMBEDOPS_TORTURE_KILLS", "1"))
SEEDS = [2000 + i for i in range(ROUNDS)]
QUERIES = ["apple banana cherry", "fern vine reed", "plum berry kiwi lime", "root stem bark"]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with ``N`` items in an hnsw index and ``NEW`` more written since."""
    return _workspace(tmp_path_factory, "hnsw")


@pytest.fixture(scope="module")
def cell_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same with a rabitq index, which a refresh extends (a fold) instead of adding a
    segment."""
    return _workspace(tmp_path_factory, "rabitq")


def _workspace(tmp_path_factory: pytest.TempPathFactory, kind: str) -> Path:
    ws = publish_tiny(tmp_path_factory.mktemp("segkill") / "ws")
    with Embedops(ws) as api:
        api.collections.create("docs", model="tiny")
        api.upsert_items("docs", [{"id": f"i{i}", "text": t} for i, t in enumerate(texts(N, 3))])
        api.build_index("docs", kind, quiet=True)
        api.upsert_items("docs", [{"id": f"n{i}", "text": t}
                                  for i, t in enumerate(texts(NEW, 4))])
        api.upsert_items("docs", [{"id": f"i{i}", "text": t}  # rewritten
                                  for i, t in enumerate(texts(200, 5))])
        api.delete_items("docs", [f"i{i}" for i in range(1000, 1100)])
    return ws.home


def _copy(base: Path, tmp_path: Path) -> Workspace:
    shutil.copytree(base, tmp_path / "ws")
    return Workspace(tmp_path / "ws")


def _snapshots(root: Path) -> set[str]:
    return {p.name for p in root.iterdir()}


def _writing(root: Path) -> Callable[[], bool]:
    """True once the command has begun staging a snapshot, or published one."""
    before = _snapshots(root)

    def ready() -> bool:
        staging = root / ".staging"
        return (staging.exists() and any(staging.iterdir())) or _snapshots(root) != before

    return ready


def _served_right(ws: Workspace) -> None:
    with Embedops(ws) as api:
        live = api.collections.info("docs").item_count
        assert live == N + NEW - 100
        for query in QUERIES:
            hits = [h.id for h in api.search("docs", query, k=K).hits]
            assert len(hits) == K and len(set(hits)) == K
        check = api.check_index("docs")
        assert check is not None and check["state"] == "consistent", check
        assert api.index_status("docs")["served"]["count"] == live
        bad = [c for c in api.verify_index("docs") if not c.ok]
        assert bad == []
        ids, _ = api.load_vectors("docs", "tiny@1")
        served = api.served_index("docs")
        overlay, _, dead = served.live_state()
        held = [served.keys[i] for i in served.index.ids().tolist() if i not in dead]
        held += list(overlay)
        assert len(held) == len(set(held)) == live  # every live item once, nothing else
        assert set(held) == set(ids)


def _kill_then_rerun(ws: Workspace, command: str, seed: int) -> None:
    """SIGKILL ``embedops index COMMAND docs`` at a random point once it writes, check what
    is served, run the command again to its end and check again."""
    rng = np.random.default_rng(seed)
    root = ws.snapshot_root("docs", "tiny@1")
    _kill_when(_cli(ws.home, "index", command, "docs"), ws.home, _writing(root),
               float(rng.uniform(0.0, 0.05)))
    _served_right(ws)
    _run(ws.home, "index", command, "docs")
    _served_right(ws)


@pytest.mark.parametrize("seed", SEEDS)
def test_kill9_during_refresh(base: Path, tmp_path: Path, seed: int) -> None:
    ws = _copy(base, tmp_path)
    _kill_then_rerun(ws, "refresh", seed)
    with Embedops(ws) as api:
        assert api.index_status("docs")["freshness"]["stale_items"] == 0


@pytest.mark.parametrize("seed", SEEDS)
def test_kill9_during_a_fold(cell_base: Path, tmp_path: Path, seed: int) -> None:
    ws = _copy(cell_base, tmp_path)
    _kill_then_rerun(ws, "refresh", seed)
    with Embedops(ws) as api:
        status = api.index_status("docs")
        assert status["freshness"]["stale_items"] == 0
        assert len(status["snapshot"]["segments"]) == 1  # folded: one segment


@pytest.mark.parametrize("seed", SEEDS)
def test_kill9_during_merge(base: Path, tmp_path: Path, seed: int) -> None:
    ws = _copy(base, tmp_path)
    _run(ws.home, "index", "refresh", "docs")
    with Embedops(ws) as api:
        api.upsert_items("docs", [{"id": f"m{i}", "text": t} for i, t in enumerate(texts(50, 6))])
        api.delete_items("docs", [f"m{i}" for i in range(50)])
    _kill_then_rerun(ws, "merge", seed)
    with Embedops(ws) as api:
        segments = api.index_status("docs")["snapshot"]["segments"]
        assert len(segments) == 1 and segments[0]["tombstones"] == 0
