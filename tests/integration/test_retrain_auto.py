"""The automatic retrain step of issue #18 item 4, on real text, with nothing of ours mocked.

'docs' is served by a static model trained on gensim's Lee news corpus (model A) and holds Lee
documents. Then recent items arrive: WordNet noun glosses, whose vocabulary A barely knows.
Simulated users search for glosses by their keywords (the hidden relevance judgement: a user
clicks a hit only when it is the gloss they had in mind); the clicks go through the real
feedback store. A golden set of other glosses, never searched by the users, is bound to the
collection. The scheduled drift check (``serve.scheduler.run_drift``) flags the drift and opens
a proposal; with ``auto_train`` its candidate is made in a background worker process:
retrained on the collection's texts plus the mined pairs, evaluated against the golden set,
migrated only when it beats A by the policy's margin. Every step is in the audit log, and the
policy switches each automatic action off.
"""

from __future__ import annotations

import json
import lzma
import random
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from serve_helpers import lee_documents, publish_lee_model, wait_until

from embedops.cli.main import main
from embedops.config import HOME_ENV, Workspace
from embedops.engine import Embedops, audit
from embedops.errors import InvalidInput
from embedops.evaluate.postprocess import GLOSSES
from embedops.lifecycle.proposals import WORKER_LOG
from embedops.monitor.db import GoldenQuery, MonitorDB
from embedops.monitor.feedback import Feedback, FeedbackEvent
from embedops.monitor.retrain import POLICY_FILE, get_proposal, proposals
from embedops.serve.scheduler import MonitorSettings, run_drift

N_RECENT, N_USERS, N_GOLDEN = 360, 200, 60
WINDOW_S = 3600.0
FINAL = ("migrated", "rolled_back", "rejected")
OFFLINE = {"golden_set": "gold", "min_traffic": 0, "canary_seconds": 0.0}
TRAIN = {"method": "static", "params": {"dim": 32, "min_count": 1, "epochs": 10,
                                        "workers": 1, "seed": 1}}


def _keywords(gloss: str) -> str:
    """What a user types to find a gloss: its three longest distinct words."""
    words: list[str] = []
    for word in gloss.lower().replace(";", " ").replace(",", " ").split():
        if word.isalpha() and len(word) >= 5 and word not in words:
            words.append(word)
    return " ".join(sorted(words, key=len, reverse=True)[:3])


def _glosses(n: int) -> list[dict[str, str]]:
    """``n`` noun glosses with at least two keywords, shuffled (seeded)."""
    with lzma.open(GLOSSES, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    random.Random(7).shuffle(rows)
    out = []
    for row in rows:
        if row["pos"] == "noun" and 30 <= len(row["gloss"]) <= 160 \
                and len(_keywords(row["gloss"]).split()) >= 2:
            out.append({"id": f"wn-{row['id']}", "text": row["gloss"]})
        if len(out) == n:
            return out
    raise AssertionError("not enough glosses")


def _simulate_users(api: Embedops, targets: list[dict[str, str]]) -> int:
    """Two users look for each target by its keywords and click it when it is shown."""
    db = MonitorDB(api.workspace, api)
    feedback = Feedback(api, db)
    feedback.allow_queries("docs", True)
    clicks = 0
    try:
        for n, target in enumerate(targets):
            for user in range(2):
                query = _keywords(target["text"])
                answer = api.search("docs", query, k=10)
                shown = tuple(hit.id for hit in answer.hits)
                if target["id"] in shown:
                    feedback.record("docs", [FeedbackEvent(
                        f"e{n}-{user}", answer.query_id, "click", target["id"], shown=shown,
                        query=query, model_version=answer.model_version)])
                    clicks += 1
    finally:
        db.close()
    return clicks


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """The workspace described in the module doc, and the time the recent items began."""
    ws = Workspace(tmp_path_factory.mktemp("retrain") / "ws").ensure()
    publish_lee_model(ws, "lee", dim=32)
    recent = _glosses(N_RECENT)
    with Embedops(ws) as api:
        api.collections.create("docs", model="lee@1")
        api.upsert_items("docs", lee_documents(200))
        time.sleep(0.05)
        cut = time.time()
        api.upsert_items("docs", recent)
        api.build_index("docs", kind="flat", quiet=True)
        clicks = _simulate_users(api, recent[:N_USERS])
        assert clicks > 0
        db = MonitorDB(ws, api)
        db.create_set("gold", "docs")
        db.add_queries("gold", [GoldenQuery(_keywords(d["text"]), {d["id"]: 1.0})
                                for d in recent[N_USERS:N_USERS + N_GOLDEN]])
        db.close()
    return ws.home, cut


@pytest.fixture
def ws(template: tuple[Path, float], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
       ) -> tuple[Workspace, float]:
    shutil.copytree(template[0], tmp_path / "ws")
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "ws"))
    monkeypatch.setenv("EMBEDOPS_QUIET", "1")
    return Workspace(tmp_path / "ws"), template[1]


def _policy(ws: Workspace, **changes: Any) -> None:
    policy = {"enabled": True, "collections": ["docs"], "margin": 0.1, "auto_train": True,
              "train": TRAIN, "auto_migrate": True, "migrate": OFFLINE, **changes}
    (ws.home / POLICY_FILE).write_text(json.dumps(policy))


def _drift(ws: Workspace, cut: float) -> dict[str, Any] | None:
    """Run the scheduled drift check as the server's scheduler does; the proposal it opened."""
    with Embedops(ws) as api:
        db = MonitorDB(ws, api)
        try:
            assert run_drift(api, db, MonitorSettings(drift_interval_s=60,
                                                      drift_window_s=WINDOW_S),
                             now=cut + WINDOW_S) == 1
            assert db.latest_drift()["docs"]["report"]["drifted"]
        finally:
            db.close()
    opened = proposals(ws)
    return opened[-1] if opened else None


def _settled(ws: Workspace, proposal_id: str) -> dict[str, Any]:
    """The proposal once the background worker is done with it."""
    def done() -> bool:  # the proposal file is written just before its audit entry
        entries = [e for e in audit.read(ws) if e.get("proposal") == proposal_id]
        assert not [e for e in entries if e["action"] == "retrain.train_failed"], entries
        status = get_proposal(ws, proposal_id)["status"]
        return status in FINAL and entries[-1]["action"] == f"retrain.{status}"

    try:
        wait_until(done, timeout=60, what="the retrain worker")
    except AssertionError:
        log = ws.home / WORKER_LOG
        raise AssertionError(log.read_text() if log.exists() else "no worker log") from None
    return get_proposal(ws, proposal_id)


def _serving(ws: Workspace) -> tuple[str, str | None]:
    with Embedops(ws) as api:
        info = api.collections.info("docs")
        return info.model_version, info.candidate_version


def _trail(ws: Workspace) -> list[str]:
    return [e["action"] for e in audit.read(ws)
            if e["action"].startswith(("retrain.", "migrate."))]


def test_drift_trains_a_candidate_that_beats_the_margin_and_migrates_it(
        ws: tuple[Workspace, float]) -> None:
    workspace, cut = ws
    _policy(workspace, margin=0.1)
    opened = _drift(workspace, cut)
    assert opened is not None and opened["status"] == "open"
    proposal = _settled(workspace, opened["id"])
    evaluation, training = proposal["evaluation"], proposal["training"]
    print(f"\ngolden recall@10: active lee@1 {evaluation['active']:.3f}, candidate "
          f"{proposal['candidate']} {evaluation['candidate']:.3f} (margin 0.1); trained on "
          f"{training['corpus_lines']} lines with {training['pairs']} + {training['heldout']} "
          f"mined pairs in {training['seconds']} s")
    assert proposal["status"] == "migrated", proposal
    assert evaluation["passed"] and evaluation["gain"] >= 0.1
    assert evaluation["queries"] == N_GOLDEN and evaluation["pool"] == 200 + N_RECENT
    assert training["method"] == "static" and training["pairs"] + training["heldout"] > 0
    assert _serving(workspace) == (proposal["candidate"], None)
    assert _trail(workspace) == [
        "retrain.proposed", "retrain.training", "retrain.trained", "retrain.accepted",
        "retrain.migrating", "migrate.start", "migrate.done", "retrain.migrated"]
    automatic = [e for e in audit.read(workspace) if e["action"] in (
        "retrain.training", "retrain.trained", "retrain.accepted", "retrain.migrating")]
    assert all(e["automatic"] for e in automatic)


def test_a_candidate_below_an_impossible_margin_is_rejected_and_not_migrated(
        ws: tuple[Workspace, float]) -> None:
    workspace, cut = ws
    _policy(workspace, margin=1.0)
    opened = _drift(workspace, cut)
    assert opened is not None
    proposal = _settled(workspace, opened["id"])
    evaluation = proposal["evaluation"]
    assert proposal["status"] == "rejected", proposal
    assert evaluation["active"] > 0 and not evaluation["passed"]  # a gain of 1.0 is impossible
    assert "is below the margin 1.0" in evaluation["reason"]
    assert _serving(workspace) == ("lee@1", None)  # nothing moved
    assert _trail(workspace) == ["retrain.proposed", "retrain.training", "retrain.trained",
                                 "retrain.rejected"]


def test_the_policy_switches_each_automatic_step_off(
        ws: tuple[Workspace, float], capsys: pytest.CaptureFixture[str]) -> None:
    workspace, cut = ws
    _policy(workspace, enabled=False)
    assert _drift(workspace, cut) is None  # no proposals at all
    with Embedops(workspace) as api:
        models = api.models.names()

    _policy(workspace, auto_train=False, auto_migrate=False,
            train={**TRAIN, "nice": 0})
    opened = _drift(workspace, cut)
    assert opened is not None and opened["status"] == "open"
    assert get_proposal(workspace, opened["id"])["status"] == "open"  # no candidate made
    with Embedops(workspace) as api:
        assert api.models.names() == models
    assert _trail(workspace) == ["retrain.proposed"]

    # A person may run the same step by hand; without auto_migrate it stops at accepted.
    assert main(["--quiet", "proposals", "train", opened["id"], "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["status"] == "accepted" and made["automatic"] is False
    assert _serving(workspace) == ("lee@1", None)
    assert _trail(workspace) == ["retrain.proposed", "retrain.training", "retrain.trained",
                                 "retrain.accepted"]


def test_an_encrypted_collection_is_never_staged_in_plaintext(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Training reads the texts and mined pairs from plain staging files, so an encrypted
    collection is refused before anything is written."""
    from embedops.lifecycle.candidate import TrainSettings, train_candidate
    from embedops.store.crypto import KEY_ENV, generate_key

    monkeypatch.setenv(KEY_ENV, generate_key())
    ws = Workspace(tmp_path / "ws").ensure()
    publish_lee_model(ws, "lee", dim=16)
    with Embedops(ws) as api:
        api.collections.create("secret", model="lee@1", encrypted=True)
        api.upsert_items("secret", lee_documents(20))
        with pytest.raises(InvalidInput, match="encrypted at rest"):
            train_candidate(api, "secret", "lee@1", TrainSettings(), [])
    assert not ws.staging_dir.is_dir() or not any(ws.staging_dir.iterdir())
