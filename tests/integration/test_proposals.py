"""Retrain proposals carried to a migration: a candidate is evaluated when accepted; with
``auto_migrate`` an accepted proposal migrates at once (same gates, rollback on failure),
otherwise it waits for ``embedops migrate --from-proposal ID``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from serve_helpers import lee_documents, publish_lee_model
from test_migrate import docs_on_lee

from embedops.cli.main import main
from embedops.config import HOME_ENV, Workspace
from embedops.engine import Embedops, audit
from embedops.monitor.db import GoldenQuery, MonitorDB
from embedops.monitor.retrain import POLICY_FILE, get_proposal, propose_on_drift

DOCS = lee_documents(100)
OFFLINE = {"golden_set": "gold", "min_traffic": 0, "canary_seconds": 0.0}


def _heldout(before: float, after: float) -> dict[str, Any]:
    """A fine-tuning's held-out figures as ``train.finetune`` records them."""
    return {"heldout": {"before": {"n": 40, "recall@10": before, "mrr@10": before / 2},
                        "after": {"n": 40, "recall@10": after, "mrr@10": after / 2}}}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """'docs' on lee@1; candidates trained from lee@1 whose held-out recall beats it by 0.1
    (good) and by 0.005 (weak), one from nothing (orphan); golden sets 'gold' and 'hard'."""
    ws = Workspace(tmp_path_factory.mktemp("proposals") / "ws").ensure()
    publish_lee_model(ws, "lee", dim=32)
    publish_lee_model(ws, "good", dim=24, parent="lee@1", eval=_heldout(0.5, 0.6))
    publish_lee_model(ws, "weak", dim=24, parent="lee@1", eval=_heldout(0.5, 0.505))
    publish_lee_model(ws, "orphan", dim=16)
    docs_on_lee(ws, DOCS)
    db = MonitorDB(ws)
    db.create_set("hard")  # not bound to 'docs': 'gold' stays the collection's one set
    db.add_queries("hard", [GoldenQuery("police", {"no-such-item": 1.0})])
    db.close()
    return ws.home


@pytest.fixture
def ws(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    shutil.copytree(template, tmp_path / "ws")
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "ws"))
    monkeypatch.setenv("EMBEDOPS_QUIET", "1")
    return Workspace(tmp_path / "ws")


def _policy(ws: Workspace, auto: bool, **migrate: Any) -> str:
    """Write the policy, open a proposal for 'docs' (as a drift check does); its id."""
    (ws.home / POLICY_FILE).write_text(json.dumps({
        "enabled": True, "collections": ["docs"], "margin": 0.02, "auto_migrate": auto,
        "migrate": {**OFFLINE, **migrate}}))
    made = propose_on_drift(ws, "docs", True, ["centroid_shift"], "lee@1")
    assert made is not None and made["status"] == "open"
    return str(made["id"])


def _cli(capsys: pytest.CaptureFixture[str], *args: str, code: int = 0) -> Any:
    got = main(["--quiet", *args])
    out = capsys.readouterr()
    assert got == code, out
    return json.loads(out.out) if code == 0 and "--json" in args else out.err


def _serving(ws: Workspace) -> tuple[str, str | None]:
    with Embedops(ws) as api:
        info = api.collections.info("docs")
        return info.model_version, info.candidate_version


def test_auto_migrate_rejects_a_weak_candidate_and_migrates_a_good_one(
        ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    first = _policy(ws, auto=True)
    weak = _cli(capsys, "proposals", "accept", first, "--candidate", "weak", "--json")
    assert weak["status"] == "rejected" and weak["evaluation"]["gain"] == pytest.approx(0.005)
    assert "below the margin" in weak["evaluation"]["reason"]
    assert _serving(ws) == ("lee@1", None)
    err = _cli(capsys, "migrate", "docs", "--from-proposal", first, code=1)
    assert "was rejected" in err

    second = _policy(ws, auto=True)  # a rejected proposal no longer blocks a new one
    good = _cli(capsys, "proposals", "accept", second, "--candidate", "good", "--json")
    assert good["status"] == "migrated", good
    assert good["golden"]["recall"].keys() == {"lee@1", "good@1"}
    assert _serving(ws) == ("good@1", None)
    with Embedops(ws) as api:
        ids, _ = api.load_vectors("docs", "good@1")
    assert sorted(ids) == sorted(d["id"] for d in DOCS)
    trail = [(e["action"], e.get("proposal")) for e in audit.read(ws)
             if e["action"].startswith(("retrain.", "migrate."))]
    assert trail == [("retrain.proposed", first), ("retrain.rejected", first),
                     ("retrain.proposed", second), ("retrain.accepted", second),
                     ("retrain.migrating", second), ("migrate.start", None),
                     ("migrate.done", None), ("retrain.migrated", second)]
    assert [e["automatic"] for e in audit.read(ws) if e["action"] == "retrain.migrating"] \
        == [True]


def test_auto_migrate_rolls_back_on_a_failing_gate(
        ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    pid = _policy(ws, auto=True, golden_set="hard", min_recall=1.0)
    done = _cli(capsys, "proposals", "accept", pid, "--candidate", "good", "--json")
    assert done["status"] == "rolled_back" and "golden gate" in done["reason"], done
    assert _serving(ws) == ("lee@1", None)  # exactly as it was


def test_without_auto_migrate_the_proposal_waits_for_from_proposal(
        ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    pid = _policy(ws, auto=False)
    orphan = _cli(capsys, "proposals", "accept", pid, "--candidate", "orphan", "--json")
    assert orphan["status"] == "rejected" and "not from the active" in \
        orphan["evaluation"]["reason"]

    pid = _policy(ws, auto=False)
    accepted = _cli(capsys, "proposals", "accept", pid, "--candidate", "good@1", "--json")
    assert accepted["status"] == "accepted" and accepted["candidate"] == "good@1"
    assert _serving(ws) == ("lee@1", None)  # nothing moves without a person
    listed = _cli(capsys, "proposals", "list", "--json")
    assert [p["status"] for p in listed] == ["rejected", "accepted"]
    assert "--from-proposal takes the model" in _cli(
        capsys, "migrate", "docs", "--from-proposal", pid, "--to", "good", code=1)
    assert "is for 'docs', not 'other'" in _cli(
        capsys, "migrate", "other", "--from-proposal", pid, code=1)
    assert "no retrain proposal 'nope'" in _cli(
        capsys, "migrate", "docs", "--from-proposal", "nope", code=1)
    assert _cli(capsys, "proposals", "accept", pid, "--candidate", "good", code=1)  # not open

    plan = _cli(capsys, "migrate", "docs", "--from-proposal", pid, "--dry-run", "--json")
    assert plan["target"] == "good@1"
    state = _cli(capsys, "migrate", "docs", "--from-proposal", pid, "--min-traffic", "0",
                 "--canary-seconds", "0", "--json")
    assert state["step"] == "done" and state["golden"]["recall"]["good@1"] >= 0.0
    assert get_proposal(ws, pid)["status"] == "migrated"
    assert _serving(ws) == ("good@1", None)
    assert "is migrated" in _cli(capsys, "migrate", "docs", "--from-proposal", pid, code=1)


def test_http_migrate_from_an_accepted_proposal(
        ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    import httpx
    from serve_helpers import running_server, wait_until

    from embedops.serve.app import create_app
    from embedops.serve.settings import ServeSettings

    weak = _policy(ws, auto=False)
    assert _cli(capsys, "proposals", "accept", weak, "--candidate", "weak", "--json")[
        "status"] == "rejected"
    pid = _policy(ws, auto=False)
    _cli(capsys, "proposals", "accept", pid, "--candidate", "good", "--json")
    app = create_app(ServeSettings(home=str(ws.home), auth=False, warmup=False))
    url = "/v1/collections/docs/migrate"
    with running_server(app) as base, httpx.Client(base_url=base, timeout=60) as c:
        both = c.post(url, json={"from_proposal": pid, "to": "good"})
        assert both.status_code == 422 and "leave 'to' out" in both.text
        assert c.post(url, json={"from_proposal": weak}).status_code == 409  # rejected
        assert c.post(url, json={"from_proposal": "nope"}).status_code == 404
        plan = c.post(url, json={"from_proposal": pid, "dry_run": True})
        assert plan.status_code == 200 and plan.json()["plan"]["target"] == "good@1"
        started = c.post(url, json={"from_proposal": pid, "min_traffic": 0,
                                    "canary_seconds": 0.5})
        assert started.status_code == 202, started.text
        wait_until(lambda: get_proposal(ws, pid)["status"] == "migrated", timeout=60,
                   what="proposal migrated")
        assert c.get(url).json()["migration"]["step"] == "done"
        hit = c.post("/v1/collections/docs/search", json={"query": "police", "k": 3})
        assert hit.status_code == 200 and hit.json()["model_version"] == "good@1"
