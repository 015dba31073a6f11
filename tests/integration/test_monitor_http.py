"""Golden sets and drift over HTTP on a real uvicorn: roles, runs and their history, the
scheduler started by the app's lifespan, and the monitoring gauges at /metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from serve_helpers import lee_documents, publish_lee_model, running_server, wait_until

from embedops.api import Embedops
from embedops.config import Workspace
from embedops.serve.app import create_app
from embedops.serve.keys import KeyStore
from embedops.serve.scheduler import MonitorSettings
from embedops.serve.settings import ServeSettings


def monitored_app(settings: ServeSettings, monitor: MonitorSettings | None = None) -> Any:
    """``create_app`` with the scheduler's settings set before the lifespan starts it."""
    app = create_app(settings)
    assert "/v1/golden" in app.openapi()["paths"]
    if monitor is not None:
        app.state.monitor_settings = monitor
    return app


def lee_workspace(root: Path, collection: str, n: int, kind: str) -> tuple[Workspace, list]:
    """A workspace with the Lee model and ``collection`` of ``n`` Lee documents, indexed."""
    ws = Workspace(root / "ws").ensure()
    publish_lee_model(ws)
    docs = lee_documents(n)
    with Embedops(ws) as api:
        api.collections.create(collection, model="lee")
        api.upsert_items(collection, docs)
        api.build_index(collection, kind, quiet=True)
    return ws, docs


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    ws, docs = lee_workspace(tmp_path_factory.mktemp("monhttp"), "lee", 80, "hnsw")
    keys = KeyStore(ws)
    tokens = {role: keys.create(role)[0] for role in ("read", "write")}
    app = monitored_app(ServeSettings(home=str(ws.home)), MonitorSettings(golden_interval_s=0.3))
    with running_server(app) as base:
        yield {"base": base, "keys": tokens, "docs": docs, "app": app}


def _client(served: dict, role: str) -> httpx.Client:
    return httpx.Client(base_url=served["base"], timeout=60,
                        headers={"Authorization": f"Bearer {served['keys'][role]}"})


def _queries(docs: list[dict], n: int) -> list[dict]:
    return [{"query": " ".join(d["text"].split()[:10]), "relevant": [d["id"]]} for d in docs[:n]]


def test_golden_over_http_roles_and_history(served: dict) -> None:
    with _client(served, "read") as reader, _client(served, "write") as writer:
        assert reader.post("/v1/golden", json={"name": "faq"}).status_code == 403
        assert writer.post("/v1/golden", json={"name": "faq"}).status_code == 201
        assert writer.post("/v1/golden", json={"name": "faq"}).status_code == 409
        resp = writer.post("/v1/golden/faq/queries", json={"queries": _queries(served["docs"], 25)})
        assert resp.status_code == 200 and resp.json()["n_queries"] == 25
        bad = writer.post("/v1/golden/faq/queries",
                          json={"queries": [{"query": "x", "relevant": {"d1": -1}}]})
        assert bad.status_code == 422 and "query 0" in bad.json()["error"]["message"]
        assert reader.post("/v1/golden/faq/run", params={"collection": "lee"}).status_code == 403
        run = writer.post("/v1/golden/faq/run", params={"collection": "lee", "k": [1, 10]})
        assert run.status_code == 200, run.text
        body = run.json()
        assert body["model_version"] == "lee@1" and body["n_queries"] == 25
        assert body["scores"]["recall@10"] > 0.3
        missing = writer.post("/v1/golden/nope/run", params={"collection": "lee"})
        assert missing.status_code == 404
        assert writer.post("/v1/golden/faq/run", params={"collection": "zzz"}).status_code == 404
        runs = reader.get("/v1/golden/faq/runs").json()["runs"]
        assert runs[0]["id"] == body["id"] and runs[0]["params"]["ks"] == [1, 10]
        assert [s["name"] for s in reader.get("/v1/golden").json()["sets"]] == ["faq"]


def test_scheduler_runs_bound_sets_and_gauges(served: dict) -> None:
    with _client(served, "write") as writer:
        writer.post("/v1/golden", json={"name": "nightly", "collection": "lee"})
        writer.post("/v1/golden/nightly/queries", json={"queries": _queries(served["docs"], 10)})
        wait_until(lambda: writer.get("/v1/golden/nightly/runs").json()["runs"],
                   what="a scheduled run")
        run = writer.get("/v1/golden/nightly/runs").json()["runs"][0]
        assert run["collection"] == "lee" and run["params"]["ks"] == [1, 10]
        metrics = writer.get("/metrics").text
    assert ('embedops_golden_recall{collection="lee",k="10",model_version="lee@1",'
            'set="nightly"}') in metrics


def test_drift_over_http(served: dict) -> None:
    texts = [d["text"] for d in served["docs"]]
    with _client(served, "write") as writer, _client(served, "read") as reader:
        body = {"reference": {"texts": texts[0::2]}, "current": {"texts": texts[1::2]}}
        assert reader.post("/v1/collections/lee/drift", json=body).status_code == 403
        resp = writer.post("/v1/collections/lee/drift", json=body)
        assert resp.status_code == 200, resp.text
        assert resp.json()["drifted"] is False, resp.json()["reasons"]
        assert resp.json()["oov_shift"] is not None
        window = writer.post("/v1/collections/lee/drift",
                             json={"reference": {"until": 1.0}, "current": {"since": 0}})
        assert window.status_code == 422 and "reference window" in window.text
        bad = writer.post("/v1/collections/lee/drift", json={**body, "thresholds": {"nope": 1}})
        assert bad.status_code == 422 and "unknown drift thresholds" in bad.text
        metrics = writer.get("/metrics").text
    assert 'embedops_drift_detected{collection="lee"} 0.0' in metrics
