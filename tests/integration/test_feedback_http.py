"""Feedback over HTTP on a real uvicorn: roles, idempotency per event id, validation, the
per-key rate limit, figures, and the feedback metrics at /metrics."""

from __future__ import annotations

import httpx
import pytest
from serve_helpers import lee_documents, publish_lee_model, running_server

from embedops.api import Embedops
from embedops.config import Workspace
from embedops.monitor.retrain import POLICY_FILE, propose_on_drift
from embedops.serve.app import create_app
from embedops.serve.keys import KeyStore
from embedops.serve.settings import ServeSettings


def test_feedback_over_http(tmp_path: pytest.TempPathFactory) -> None:
    ws = Workspace(tmp_path / "ws").ensure()  # type: ignore[operator]
    publish_lee_model(ws)
    with Embedops(ws) as api:
        api.collections.create("docs", model="lee")
        api.upsert_items("docs", lee_documents(40))
        api.build_index("docs", "flat", quiet=True)
    keys = KeyStore(ws)
    tokens = {role: keys.create(role)[0] for role in ("read", "write")}
    app = create_app(ServeSettings(home=str(ws.home), rate_limit_write="12/minute"))
    assert "/v1/collections/{name}/feedback" in app.openapi()["paths"]
    with running_server(app) as base:
        read, write = (httpx.Client(base_url=base, timeout=60,
                                    headers={"Authorization": f"Bearer {tokens[r]}"})
                       for r in ("read", "write"))
        answer = read.post("/v1/collections/docs/search",
                           json={"query": "fire near Sydney", "k": 5}).json()
        shown = [h["id"] for h in answer["hits"]]
        event = {"event_id": "e1", "query_id": answer["query_id"], "kind": "click",
                 "item_id": shown[1], "shown": shown, "model_version": answer["model_version"]}
        url = "/v1/collections/docs/feedback"
        assert read.post(url, json={"events": [event]}).status_code == 403
        first = write.post(url, json={"events": [event]})  # write hits: 1
        assert first.status_code == 200, first.text
        assert first.json() == {"collection": "docs", "received": 1, "written": 1,
                                "duplicates": 0}
        again = write.post(url, json={"events": [event]}).json()  # 2
        assert again["written"] == 0 and again["duplicates"] == 1
        other = {**event, "event_id": "e2", "query_id": "q-other", "kind": "thumbs",
                 "value": 1}
        assert write.post(url, json={"events": [other]}).json()["written"] == 1  # 3
        bad = write.post(url, json={"events": [{**event, "event_id": "e3", "kind": "grade",
                                                "value": 7}]})  # 4
        assert bad.status_code == 422 and bad.json()["error"]["code"]
        assert write.post(url, json={"events": [{**event, "extra": 1}]}).status_code == 422
        assert write.post("/v1/collections/nope/feedback",
                          json={"events": [event]}).status_code == 404  # 6

        figures = read.get(url).json()["versions"]
        assert figures == [{"collection": "docs", "model_version": answer["model_version"],
                            "events": 2, "queries": 2, "clicked_queries": 1, "ctr": 0.5}]
        (ws.home / POLICY_FILE).write_text('{"enabled": true}')
        assert propose_on_drift(ws, "docs", True, ["centroid_shift"], "lee@1") is not None
        metrics = read.get("/metrics").text
        assert 'embedops_retrain_proposals{collection="docs",status="open"} 1.0' in metrics
        version = answer["model_version"]
        assert (f'embedops_feedback_events_total{{collection="docs",kind="click",'
                f'model_version="{version}"}} 1.0') in metrics
        assert f'embedops_feedback_ctr{{collection="docs",model_version="{version}"}} 0.5' \
            in metrics

        statuses = [write.post(url, json={"events": [{**event, "event_id": f"r{n}"}]}
                               ).status_code for n in range(10)]
        assert 429 in statuses  # the write role's per-key limit applies here too
        read.close()
        write.close()
