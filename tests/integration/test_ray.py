"""Ingest through a local Ray cluster (one per module, 2 CPUs): 3,000 real documents (WordNet
glosses) get the same items and vectors as a local ingest; a driver killed midway and run again
(through the CLI, ``--ray --ray-address``) stores every item exactly once."""

from __future__ import annotations

import json
import lzma
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from serve_helpers import publish_lee_model

from embedops.api import Embedops
from embedops.config import Workspace
from embedops.data import wordnet_glosses_path

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

N = 3000


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A local Ray cluster for this module; yields its address (for other drivers)."""
    options = {"num_cpus": 2, "include_dashboard": False, "log_to_driver": False,
               "configure_logging": False}
    try:
        ray.init(**options)
    except Exception:  # noqa: BLE001 - the node's start can time out on a loaded 2-core machine
        ray.shutdown()
        ray.init(**options)  # once more; a second failure is a real one
    try:
        yield str(ray.get_runtime_context().gcs_address)
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def glosses(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "glosses.jsonl"
    with lzma.open(wordnet_glosses_path(), "rt", encoding="utf-8") as src, path.open("w") as out:
        for i, line in enumerate(src):
            if i >= N:
                break
            row = json.loads(line)
            out.write(json.dumps({"id": row["id"], "text": row["gloss"], "pos": row["pos"],
                                  "lemmas": row["lemmas"]}) + "\n")
    return path


@pytest.fixture(scope="module")
def local_state(glosses: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What a plain local ingest stores (the reference)."""
    ws = _workspace(tmp_path_factory.mktemp("local"))
    with Embedops(ws) as eo:
        report = eo.ingest("wn", glosses, quiet=True, batch_size=100)
        return {"report": report.to_dict(), **_state(eo)}


def _workspace(folder: Path) -> Workspace:
    ws = Workspace(folder / "ws").ensure()
    publish_lee_model(ws)
    with Embedops(ws) as eo:
        eo.collections.create("wn", model="lee")
    return ws


def _state(eo: Embedops) -> dict[str, Any]:
    items = sorted((it.id, it.text, json.dumps(it.metadata, sort_keys=True))
                   for it in eo.iter_items("wn"))
    ids, vectors = eo.load_vectors("wn", "lee")
    order = np.argsort(ids)
    return {"items": items, "ids": [ids[i] for i in order],
            "vectors": np.asarray(vectors)[order]}


def _same(state: dict[str, Any], want: dict[str, Any]) -> None:
    assert len(state["items"]) == N and state["items"] == want["items"]
    assert state["ids"] == want["ids"]
    np.testing.assert_allclose(state["vectors"], want["vectors"], rtol=0, atol=1e-6)


def test_ray_ingest_stores_what_a_local_ingest_stores(
    cluster: str, glosses: Path, local_state: dict[str, Any], tmp_path: Path,
) -> None:
    from embedops.engine.executors import RayExecutor

    ws = _workspace(tmp_path)
    with Embedops(ws) as eo:
        report = eo.ingest("wn", glosses, quiet=True, batch_size=100,
                           executor=RayExecutor(cluster, workers=1))
        got = report.to_dict()
        for key in ("read", "embedded", "unchanged", "deleted", "duplicates", "failed_count"):
            assert got[key] == local_state["report"][key], key
        _same(_state(eo), local_state)


_DRIVER = textwrap.dedent("""
    import sys, time
    from embedops.api import Embedops
    from embedops.engine import batch
    from embedops.engine.executors import RayExecutor

    write = batch._write
    def slow_write(*args, **kwargs):  # a driver slow enough to be killed midway
        write(*args, **kwargs)
        time.sleep(0.3)
    batch._write = slow_write
    with Embedops(home=sys.argv[1]) as eo:
        eo.ingest("wn", sys.argv[2], quiet=True, batch_size=100,
                  executor=RayExecutor(sys.argv[3], workers=1))
""")


def _stored(ws: Workspace) -> int:
    with sqlite3.connect(f"file:{ws.catalog_path}?mode=ro", uri=True, timeout=30) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM items WHERE deleted_at IS NULL")
                   .fetchone()[0])


def test_a_driver_killed_midway_and_run_again_stores_every_item_once(
    cluster: str, glosses: Path, local_state: dict[str, Any], tmp_path: Path,
) -> None:
    ws = _workspace(tmp_path)
    env = {**os.environ, "EMBEDOPS_HOME": str(ws.home), "EMBEDOPS_QUIET": "1"}
    driver = subprocess.Popen([sys.executable, "-c", _DRIVER, str(ws.home), str(glosses),
                               cluster], env=env, stdout=subprocess.DEVNULL,
                              stderr=(tmp_path / "driver.log").open("wb"))
    try:
        deadline = time.monotonic() + 90
        while _stored(ws) < 500:
            assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the driver stored nothing in time"
            time.sleep(0.1)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    finally:
        if driver.poll() is None:
            driver.kill()
    before = _stored(ws)
    assert 500 <= before < N

    again = subprocess.run(
        [sys.executable, "-m", "embedops.cli.main", "ingest", "wn", str(glosses), "--batch-size",
         "100", "--json", "--ray", "--ray-address", cluster, "--ray-workers", "1"],
        env=env, capture_output=True, text=True, timeout=300, check=True)
    report = json.loads(again.stdout)
    assert report["unchanged"] == before and report["embedded"] == N - before
    with Embedops(ws) as eo:
        _same(_state(eo), local_state)
        assert eo.missing_vectors("wn", "lee") == []
    with sqlite3.connect(f"file:{ws.catalog_path}?mode=ro", uri=True) as conn:
        items = conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        vectors = conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
        writes = conn.execute("SELECT COUNT(*), COUNT(DISTINCT item_pk) FROM lineage").fetchone()
    assert items == vectors == N
    assert writes[0] == writes[1] == N  # one write per item: none stored twice, none lost


def test_rollout_start_with_ray_backfills_the_candidate(
    cluster: str, glosses: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from embedops.cli.main import main

    ws = _workspace(tmp_path)
    with Embedops(ws) as eo:
        eo.ingest("wn", glosses, quiet=True)
    publish_lee_model(ws, dim=24)  # lee@2: the version to roll out
    monkeypatch.setenv("EMBEDOPS_HOME", str(ws.home))
    monkeypatch.setenv("EMBEDOPS_QUIET", "1")
    capsys.readouterr()
    assert main(["rollout", "start", "wn", "--model", "lee@2", "--ray", "--ray-address",
                 cluster, "--ray-workers", "1", "--json"]) == 0
    state = json.loads(capsys.readouterr().out)
    assert state["phase"] == "canary" and state["backfill"] == {"done": N, "total": N}
    with Embedops(ws) as eo:
        assert eo.missing_vectors("wn", "lee@2") == []
        items = eo.peek("wn", 50)
        ids, vectors = eo.load_vectors("wn", "lee@2", [it.id for it in items])
        want = eo.embed([it.text for it in items], "lee@2")
        np.testing.assert_allclose(np.asarray(vectors), want, rtol=0, atol=1e-6)
        assert ids == [it.id for it in items]
