"""Feedback: idempotent events per event id, CTR per model version, query texts only where
allowed, mining into golden candidates and fine-tuning pairs with hard negatives."""

from __future__ import annotations

from serve_helpers import lee_documents, publish_lee_model

from embedops.config import Workspace
from embedops.engine import Embedops
from embedops.monitor.db import MonitorDB
from embedops.monitor.feedback import Feedback, FeedbackEvent


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
