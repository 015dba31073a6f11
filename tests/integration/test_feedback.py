"""Feedback: idempotent events per event id, CTR per model version, query texts only where
allowed, mining into golden candidates and fine-tuning pairs with hard negatives."""

from __future__ import annotations

import json
import lzma
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from serve_helpers import lee_documents, publish_lee_model

from embedops.cli.main import main
from embedops.config import HOME_ENV, Workspace
from embedops.engine import Embedops
from embedops.monitor.db import MonitorDB
from embedops.monitor.feedback import Feedback, FeedbackEvent
from embedops.monitor.golden import read_jsonl
from embedops.train.finetune import read_pairs


def test_record_figures_and_mine(workspace: Workspace) -> None:
    publish_lee_model(workspace, "lee", dim=16)
    docs = lee_documents(40)
    with Embedops(workspace) as api:
        api.collections.create("docs", model="lee@1")
        api.upsert_items("docs", docs)
        db = MonitorDB(workspace, api)
        fb = Feedback(api, db)
        answer = api.search("docs", docs[5]["text"][:60], k=5, mode="lexical")
        shown = tuple(h.id for h in answer.hits)
        click = FeedbackEvent("e1", answer.query_id, "click", shown[2], shown=shown,
                              query="mail me at someone@example.com", model_version="lee@1")
        assert fb.record("docs", [click]) == {"received": 1, "written": 1, "duplicates": 0}
        assert fb.record("docs", [click])["duplicates"] == 1  # idempotent per event id
        stored = db.connection().execute("SELECT query FROM feedback").fetchall()
        assert stored == [(None,)]  # query texts are off by default
        assert fb.mine("docs").counts()["skipped_no_query"] == 1

        fb.allow_queries("docs", True)
        events = [FeedbackEvent(f"q{n}", f"a{n}", kind, shown[2], value, shown,
                                "Fire near Sydney someone@example.com", "lee@1")
                  for n, (kind, value) in enumerate([("click", None), ("thumbs", 1),
                                                     ("grade", 3)])]
        fb.record("docs", events)
        text = db.connection().execute("SELECT query FROM feedback WHERE event_id='q0'"
                                       ).fetchone()[0]
        assert "example.com" not in text  # redacted before it is stored
        figures = fb.figures("docs")
        assert figures[0]["model_version"] == "lee@1" and figures[0]["events"] == 4
        assert figures[0]["ctr"] == 0.5  # 2 of the 4 answers had a click

        mined = fb.mine("docs", min_evidence=2, holdout=0.0)
        assert [c["relevant"] for c in mined.candidates] == [{shown[2]: 1.0}]
        texts = {d["id"]: d["text"] for d in docs}
        assert {p["negative"] for p in mined.train} == {texts[shown[0]], texts[shown[1]]}
        assert all(p["positive"] == texts[shown[2]] for p in mined.train)
        assert fb.mine("docs", min_evidence=4).candidates == []
        db.close()


SHARED = Path(__file__).resolve().parents[2].parent / "shared/data/revdict"


def _revdict(n_queries: int, n_distractors: int) -> tuple[list[dict], list[dict]]:
    """Dev queries with one answer (the hidden judgement), their answers' definitions and
    random other definitions from docs-20k."""
    with lzma.open(SHARED / "docs-20k.jsonl.xz", "rt", encoding="utf-8") as fh:
        docs = {row["id"]: row for row in map(json.loads, fh)}
    queries, seen = [], set()
    for row in map(json.loads, (SHARED / "queries-dev.jsonl").read_text().splitlines()):
        if len(row["relevant"]) == 1 and row["query"].lower() not in seen:
            seen.add(row["query"].lower())
            queries.append(row)
        if len(queries) == n_queries:
            break
    answers = {q["relevant"][0] for q in queries}
    rng = np.random.default_rng(0)
    others = [i for i in sorted(docs) if i not in answers]
    chosen = answers | {others[i] for i in rng.choice(len(others), n_distractors, False)}
    return queries, [{"id": i, "text": docs[i]["text"]} for i in sorted(chosen)]


def test_cli_mine_from_simulated_clicks_on_revdict(
        workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Users click the hidden answer of revdict dev queries when it is shown (three users
    each), one user clicks the top hit when it is not (noise, below the evidence threshold);
    ``feedback mine`` must find exactly the shown answers, with the hits above them as hard
    negatives, in files that ``embedops finetune`` and ``embedops golden import`` read."""
    if not (SHARED / "docs-20k.jsonl.xz").exists():
        pytest.skip(f"the revdict data is not shipped; {SHARED} is absent")
    queries, docs = _revdict(60, 400)
    publish_lee_model(workspace, "lee", dim=16)
    with Embedops(workspace) as api:
        api.collections.create("defs", model="lee@1")
        api.upsert_items("defs", docs)
        answers = [(q, api.search("defs", q["query"], k=10, mode="lexical")) for q in queries]
    monkeypatch.setenv(HOME_ENV, str(workspace.home))

    def cli(*args: str) -> Any:
        code = main(["--quiet", *args])
        out = capsys.readouterr().out
        assert code == 0, out
        return json.loads(out)

    events, expected = [], {}
    for q, answer in answers:
        shown = [h.id for h in answer.hits]
        common = {"query_id": answer.query_id, "shown": shown, "query": q["query"],
                  "model_version": "lee@1"}
        if q["relevant"][0] in shown:
            expected[" ".join(q["query"].lower().split())] = (q["relevant"][0], shown)
            events += [{**common, "event_id": f"{answer.query_id}-{u}", "kind": "click",
                        "item_id": q["relevant"][0]} for u in range(3)]
        elif shown:
            events.append({**common, "event_id": f"{answer.query_id}-n", "kind": "click",
                           "item_id": shown[0]})
    assert len(expected) >= 5, "lexical search should show some answers"
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))

    cli("feedback", "queries", "defs", "--allow", "--json")
    assert cli("feedback", "record", "defs", "--file", str(path), "--json")["written"] \
        == len(events)
    assert cli("feedback", "record", "defs", "--file", str(path), "--json")["duplicates"] \
        == len(events)  # idempotent per event id
    one = cli("feedback", "record", "defs", "--query-id", "extra", "--kind", "thumbs",
              "--item", docs[0]["id"], "--value", "-1", "--json")
    assert one["written"] == 1

    out = tmp_path / "mined"
    mined = cli("feedback", "mine", "defs", "--out", str(out), "--holdout", "0.25", "--json")
    candidates = [json.loads(line) for line in
                  (out / "golden_candidates.jsonl").read_text().splitlines()]
    assert {c["query"]: list(c["relevant"]) for c in candidates} == \
        {query: [item] for query, (item, _) in expected.items()}
    texts = {d["id"]: d["text"] for d in docs}
    train = [json.loads(line) for line in (out / "pairs_train.jsonl").read_text().splitlines()]
    held = [json.loads(line) for line in (out / "pairs_heldout.jsonl").read_text().splitlines()]
    assert not {p["anchor"] for p in train} & {p["anchor"] for p in held}
    want = []
    for query, (item, shown) in expected.items():
        above = shown[:shown.index(item)][:3]
        want += [(query, texts[item], texts[n]) for n in above] or [(query, texts[item], None)]
    got = [(p["anchor"], p["positive"], p.get("negative")) for p in train + held]
    assert sorted(got, key=str) == sorted(want, key=str)
    assert mined["counts"]["train"] == len(train) and mined["counts"]["candidates"] == len(
        candidates)
    assert len(read_pairs(out / "pairs_train.jsonl")) == len(train)  # what finetune reads
    assert len(read_jsonl(out / "golden_candidates.jsonl")) == len(candidates)


def test_retrain_proposal_only_when_the_policy_asks(workspace: Workspace) -> None:
    from embedops.engine import audit
    from embedops.monitor.retrain import POLICY_FILE, PolicyError, proposals, propose_on_drift

    assert propose_on_drift(workspace, "docs", True, ["centroid_shift"], "lee@1") is None
    policy = workspace.home / POLICY_FILE
    policy.write_text(json.dumps({"enabled": True, "collections": ["docs"]}))
    assert propose_on_drift(workspace, "docs", False, [], "lee@1") is None  # no drift
    assert propose_on_drift(workspace, "other", True, ["x"], "lee@1") is None  # not covered
    made = propose_on_drift(workspace, "docs", True, ["centroid_shift"], "lee@1")
    assert made is not None and made["status"] == "open"
    assert propose_on_drift(workspace, "docs", True, ["centroid_shift"], "lee@1") is None
    assert [p["id"] for p in proposals(workspace)] == [made["id"]]
    entries = [e for e in audit.read(workspace) if e["action"] == "retrain.proposed"]
    assert [e["proposal"] for e in entries] == [made["id"]]
    policy.write_text(json.dumps({"enabled": True, "auto_migrate": True, "migrate": 5}))
    with pytest.raises(PolicyError, match="'migrate' must be an object"):
        propose_on_drift(workspace, "docs", True, ["x"], "lee@1")
    policy.write_text(json.dumps({"enabled": False}))  # switched off
    assert propose_on_drift(workspace, "new", True, ["x"], "lee@1") is None
