"""``migrate`` end to end: the plan, a full offline migration, a failing gate that rolls back
with search answering throughout, and a kill -9 at every step followed by a rerun."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from serve_helpers import lee_documents, publish_lee_model

from embedops.config import HOME_ENV, Workspace
from embedops.engine import Embedops
from embedops.lifecycle.migrate import KILL_ENV, STEPS, MigrateOptions, Migrations
from embedops.monitor.db import GoldenQuery, MonitorDB

DOCS = lee_documents(120)
OFFLINE = MigrateOptions(golden_set="gold", min_traffic=0, canary_seconds=0.0, batch=32)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace: 'docs' on lee@1 (dim 32, flat index), lee@2 (dim 24), golden set 'gold'."""
    ws = Workspace(tmp_path_factory.mktemp("migrate") / "ws").ensure()
    publish_lee_model(ws, "lee", dim=32)
    publish_lee_model(ws, "lee", dim=24)
    docs_on_lee(ws, DOCS)
    return ws.home


def docs_on_lee(ws: Workspace, docs: list[dict[str, Any]]) -> None:
    """'docs' on lee@1 with ``docs`` (flat index) and golden set 'gold' bound to it: the
    first 20 docs, each found by its first 80 characters."""
    with Embedops(ws) as api:
        api.collections.create("docs", model="lee@1")
        api.upsert_items("docs", docs)
        api.build_index("docs", kind="flat", quiet=True)
        db = MonitorDB(ws, api)
        db.create_set("gold", "docs")
        db.add_queries("gold", [GoldenQuery(d["text"][:80], {d["id"]: 1.0}) for d in docs[:20]])
        db.close()


@pytest.fixture
def home(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "ws"
    shutil.copytree(template, target)
    monkeypatch.setenv(HOME_ENV, str(target))
    monkeypatch.setenv("EMBEDOPS_QUIET", "1")
    return target


def _assert_migrated(home: Path, version: str = "lee@2") -> None:
    with Embedops(home=home) as api:
        info = api.collections.info("docs")
        assert (info.model_version, info.candidate_version) == (version, None)
        ids, vectors = api.load_vectors("docs", version)
        assert sorted(ids) == sorted(d["id"] for d in DOCS)  # every item, once
        assert vectors.shape == (len(DOCS), 24)
        assert api.search("docs", "police", k=3).model_version == version


def test_dry_run_prints_plan_and_changes_nothing(home: Path) -> None:
    out = _cli(home, "migrate", "docs", "--to", "lee@2", "--dry-run", "--json")
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert (plan["source"], plan["target"], plan["missing"]) == ("lee@1", "lee@2", len(DOCS))
    assert plan["bytes_needed"] == len(DOCS) * 24 * 4 * 2
    assert plan["options"]["golden_set"] == "gold"  # the set bound to the collection
    assert any("dimension changes 32 → 24" in n for n in plan["notes"])
    assert not (home / "rollouts" / "docs.json").exists()
    bad = _cli(home, "migrate", "docs", "--to", "nope@1", "--dry-run")
    assert bad.returncode == 1 and "error:" in bad.stderr


def test_happy_path_offline(home: Path) -> None:
    steps: list[str] = []
    with Embedops(home=home) as api:
        def event(step: str, message: str) -> None:
            if message == "running":
                steps.append(step)

        nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        state = Migrations(api, on_event=event).run("docs", "lee@2", OFFLINE)
    assert state["step"] == "done", state
    # the work ran niced on a thread of its own; the caller's thread keeps its priority
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == nice
    assert steps == list(STEPS)
    recall = state["golden"]["recall"]  # both versions' golden recall, in the record
    assert state["golden"]["k"] == 10 and recall.keys() == {"lee@1", "lee@2"}
    _assert_migrated(home)
    assert "migrate.done" in Workspace(home).audit_path.read_text()


def test_failing_gate_rolls_back_with_search_answering(home: Path) -> None:
    with Embedops(home=home) as api:
        db = MonitorDB(api.workspace, api)
        db.create_set("hard", "docs")
        db.add_queries("hard", [GoldenQuery("police", {"no-such-item": 1.0})])
        db.close()
        stop, answers, failures = threading.Event(), [], []

        def searcher() -> None:
            while not stop.is_set():
                try:
                    answers.append(api.search("docs", "fire police", k=5).model_version)
                except Exception as exc:  # noqa: BLE001 - the test counts them
                    failures.append(repr(exc))

        thread = threading.Thread(target=searcher)
        thread.start()
        try:
            impossible = MigrateOptions(golden_set="hard", min_recall=1.0, min_traffic=0,
                                        canary_seconds=0.0)
            state = Migrations(api).run("docs", "lee@2", impossible)
        finally:
            stop.set()
            thread.join()
        assert state["step"] == "rolled_back" and "golden gate" in state["reason"], state
        assert state["golden"]["recall"]["lee@2"] < 1.0  # the failing figure is kept
        info = api.collections.info("docs")
        assert (info.model_version, info.candidate_version) == ("lee@1", None)
        assert not failures and answers and set(answers) == {"lee@1"}
        assert api.search("docs", "fire", k=3).model_version == "lee@1"
    out = _cli(home, "migrate", "docs", "--to", "lee@2", "--golden", "hard", "--min-recall",
               "1", "--min-traffic", "0", "--canary-seconds", "0")
    assert out.returncode == 1 and "rolled back" in out.stderr


@pytest.mark.slow
@pytest.mark.parametrize("step", ["backfill-batch", *STEPS])
def test_kill_at_each_step_then_rerun_completes(home: Path, step: str) -> None:
    args = ("migrate", "docs", "--to", "lee@2", "--min-traffic", "0", "--canary-seconds", "0",
            "--batch", "32", "--json")
    killed = _cli(home, *args, env={KILL_ENV: step})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    again = _cli(home, "migrate", "docs", "--json")  # resumes: no --to needed
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["step"] == "done"
    _assert_migrated(home)


def _cli(home: Path, *args: str, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, HOME_ENV: str(home), "EMBEDOPS_QUIET": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "embedops.cli.main", *args], env=full,
                          capture_output=True, text=True, timeout=120)


def test_http_migrate_with_search_answering(home: Path) -> None:
    import httpx
    from serve_helpers import running_server, wait_until

    from embedops.serve.app import create_app
    from embedops.serve.settings import ServeSettings

    app = create_app(ServeSettings(home=str(home), auth=False, warmup=False))
    with running_server(app) as base, httpx.Client(base_url=base, timeout=60) as c:
        plan = c.post("/v1/collections/docs/migrate", json={"to": "lee@2", "dry_run": True})
        assert plan.status_code == 200, plan.text
        assert plan.json()["plan"]["target"] == "lee@2"
        bad = c.post("/v1/collections/docs/migrate", json={"to": "lee@9"})
        assert bad.status_code == 404, bad.text
        started = c.post("/v1/collections/docs/migrate",
                         json={"to": "lee@2", "min_traffic": 0, "canary_seconds": 0.5})
        assert started.status_code == 202, started.text
        codes: list[int] = []

        def finished() -> bool:
            codes.append(c.post("/v1/collections/docs/search",
                                json={"query": "police", "k": 3}).status_code)
            return bool(c.get("/v1/collections/docs/migrate").json()["migration"]["step"]
                        == "done")

        wait_until(finished, timeout=60, what="migration done")
        assert set(codes) == {200}
        assert c.post("/v1/collections/docs/search", json={"query": "police", "k": 3}
                      ).json()["model_version"] == "lee@2"
