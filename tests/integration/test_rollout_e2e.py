"""A rollout end to end under load: a real uvicorn server, a load generator in a second process
(searches and upserts, bounded in time and requests), a second word2vec model rolled out as a
canary over HTTP, promoted, then rolled back. Zero 5xx, no lost writes, a complete audit trail."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from serve_helpers import lee_documents, publish_lee_model, running_server, wait_until

from embedops.config import Workspace
from embedops.engine import audit
from embedops.lifecycle.routing import bucket
from embedops.serve.app import create_app
from embedops.serve.keys import KeyStore
from embedops.serve.settings import ServeSettings

DOCS = lee_documents(200)
SHARE = 0.5

# The load generator: round-robins read keys over searches, upserts new items with the write
# key, and stops on the stop file, after MAX_S seconds or MAX_REQUESTS requests.
LOADGEN = r"""
import json, sys, time, httpx
base, config_path, stop_path, out_path = sys.argv[1:5]
cfg = json.load(open(config_path))
MAX_S, MAX_REQUESTS = 90.0, 4000
codes, versions, written, n = {}, {}, [], 0
started = time.monotonic()
import os
with httpx.Client(base_url=base, timeout=60) as c:
    while not os.path.exists(stop_path) and time.monotonic() - started < MAX_S \
            and n < MAX_REQUESTS:
        n += 1
        if n % 5 == 0:
            item = {"id": f"load{n}", "text": cfg["texts"][n % len(cfg["texts"])] + f" load{n}",
                    "metadata": {"load": n}}
            r = c.post("/v1/collections/docs/items", json={"items": [item]},
                       headers={"X-API-Key": cfg["writer"]})
            if r.status_code == 200:
                written.append([item["id"], time.time()])
        else:
            key = cfg["readers"][n % len(cfg["readers"])]
            r = c.post("/v1/collections/docs/search", headers={"X-API-Key": key},
                       json={"query": cfg["texts"][n % len(cfg["texts"])], "k": 5})
            if r.status_code == 200:
                v = r.json()["model_version"]
                versions[v] = versions.get(v, 0) + 1
        codes[str(r.status_code)] = codes.get(str(r.status_code), 0) + 1
json.dump({"codes": codes, "versions": versions, "written": written, "requests": n},
          open(out_path, "w"))
"""


def _keys(ws: Workspace) -> tuple[str, str, list[tuple[str, str]]]:
    """An admin key, a write key, and read keys on both sides of the canary split."""
    store = KeyStore(ws)
    admin, _ = store.create("admin")
    writer, _ = store.create("write")
    readers: list[tuple[str, str]] = []
    while len(readers) < 4 or len({bucket("docs", "lee@2", i) < SHARE for _, i in readers}) < 2:
        secret, info = store.create("read")
        readers.append((secret, info.id))
    return admin, writer, readers


def _status(admin: httpx.Client) -> dict:
    resp = admin.get("/v1/collections/docs/rollout")
    assert resp.status_code == 200, resp.text
    return resp.json()["rollout"]


def _search(admin: httpx.Client, text: str, version: str | None) -> httpx.Response:
    body = {"query": text, "k": 10, **({"model_version": version} if version else {})}
    return admin.post("/v1/collections/docs/search", json=body)


@pytest.mark.slow
def test_canary_promote_rollback_under_load(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    publish_lee_model(ws, "lee", dim=32)
    publish_lee_model(ws, "lee", dim=24)
    admin_key, writer, readers = _keys(ws)
    app = create_app(ServeSettings(home=str(ws.home), auth=True, max_batch=100))
    texts = [d["text"][:300] for d in DOCS]
    config = tmp_path / "load.json"
    config.write_text(json.dumps({"writer": writer, "readers": [s for s, _ in readers],
                                  "texts": texts[150:]}))
    stop, out = tmp_path / "stop", tmp_path / "result.json"
    with running_server(app) as base, httpx.Client(
        base_url=base, timeout=120, headers={"X-API-Key": admin_key}
    ) as admin:
        assert admin.post("/v1/collections", json={"name": "docs", "model": "lee@1"}
                          ).status_code in (200, 201)
        admin.post("/v1/collections/docs/items", json={"items": DOCS[:100]}).raise_for_status()
        admin.post("/v1/collections/docs/index", json={"kind": "flat"}).raise_for_status()
        load = subprocess.Popen([sys.executable, "-c", LOADGEN, base, str(config), str(stop),
                                 str(out)])
        try:
            time.sleep(1.0)
            gates = {"min_requests": 20, "max_p99_ms": 30000, "max_error_ratio": 0.01}
            resp = admin.post("/v1/collections/docs/rollout",
                              json={"model": "lee@2", "share": SHARE, "rate": 500,
                                    "gates": gates})
            assert resp.status_code == 202, resp.text
            wait_until(lambda: _status(admin)["phase"] == "canary", timeout=60, what="canary")
            wait_until(lambda: _status(admin)["gates"]["passed"], timeout=90, what="gates")
            promoted = admin.post("/v1/collections/docs/rollout/promote")
            assert promoted.status_code == 200, promoted.text
            assert promoted.json()["rollout"]["phase"] == "promoted"
            assert promoted.headers["X-Model-Version"] == "lee@2"
            time.sleep(2.0)
            # Before the rollback, every write so far is searchable under both versions.
            rollback_at = time.time()
            both = {v: _search(admin, texts[160] + " load", v) for v in ("lee@1", "lee@2")}
            assert {v: r.json()["model_version"] for v, r in both.items()} == \
                {"lee@1": "lee@1", "lee@2": "lee@2"}
            back = admin.post("/v1/collections/docs/rollout/rollback",
                              json={"reason": "e2e test"})
            assert back.status_code == 200 and back.json()["rollout"]["phase"] == "rolled_back"
            time.sleep(1.0)
        finally:
            stop.touch()
            load.wait(timeout=120)
        result = json.loads(out.read_text())
        assert set(result["codes"]) == {"200"}, result["codes"]  # zero 5xx, zero 4xx
        assert {"lee@1", "lee@2"} <= set(result["versions"]), result["versions"]
        assert _search(admin, texts[0], None).json()["model_version"] == "lee@1"

        # No lost writes: every item written before the rollback has vectors of both versions
        # and is searchable.
        api = app.state.ctx.api
        during = [i for i, ts in result["written"] if ts < rollback_at]
        assert len(during) >= 10
        for version in ("lee@1", "lee@2"):
            ids, _ = api.load_vectors("docs", version, during)
            assert sorted(ids) == sorted(during), version
        for item_id in during[:: max(1, len(during) // 10)]:
            body = {"query": texts[0], "k": 1, "filters": {"load": int(item_id[4:])}}
            hits = admin.post("/v1/collections/docs/search", json=body).json()["hits"]
            assert [h["id"] for h in hits] == [item_id]

    trail = [e for e in audit.read(ws) if e["action"].startswith("rollout.")]
    assert [e["action"] for e in trail] == ["rollout.start", "rollout.serving",
                                            "rollout.promote", "rollout.rollback"]
    admin_id = admin_key.split("_")[1]
    assert {e["who"] for e in trail} == {admin_id}


def test_rollout_routes_refuse_bad_calls_and_roll_back_a_broken_canary(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    publish_lee_model(ws, "lee", dim=16)
    publish_lee_model(ws, "lee", dim=12)
    store = KeyStore(ws)
    admin_key, _ = store.create("admin")
    reader, _ = store.create("read")
    app = create_app(ServeSettings(home=str(ws.home), auth=True, warmup=False))
    with running_server(app) as base, httpx.Client(
        base_url=base, timeout=60, headers={"X-API-Key": admin_key}
    ) as admin:
        admin.post("/v1/collections", json={"name": "docs", "model": "lee@1"}).raise_for_status()
        admin.post("/v1/collections/docs/items", json={"items": DOCS[:30]}).raise_for_status()
        url = "/v1/collections/docs/rollout"
        assert admin.get(url).status_code == 404
        assert admin.get(url, headers={"X-API-Key": reader}).status_code == 403
        assert httpx.get(base + url).status_code == 401
        assert admin.post(url, json={"model": "lee@2", "share": 2}).status_code == 422
        assert admin.post(url, json={"model": "lee@1"}).status_code == 422  # already active
        assert admin.post(url, json={"model": "nope"}).status_code == 404
        assert admin.post(url + "/promote").status_code == 404
        # Every candidate search is "too slow": the evaluator thread must roll the canary back.
        gates = {"max_p99_ms": 1e-6, "min_requests_to_judge": 3}
        started = admin.post(url, json={"model": "lee@2", "share": 1.0, "gates": gates})
        assert started.status_code == 202, started.text
        wait_until(lambda: admin.get(url).json()["rollout"]["phase"] == "canary", what="canary")
        assert admin.post(url, json={"model": "lee@2"}).status_code == 409  # one at a time
        promote = admin.post(url + "/promote")
        assert promote.status_code == 409 and promote.json()["error"]["code"] == "gate_failed"
        for text in [d["text"][:200] for d in DOCS[:5]]:
            hit = admin.post("/v1/collections/docs/search", json={"query": text, "k": 3})
            assert hit.status_code == 200 and hit.headers["X-Model-Version"] == "lee@2"
        store_path = ws.home / "rollouts" / "docs.json"
        wait_until(lambda: json.loads(store_path.read_text())["phase"] == "rolled_back",
                   what="automatic rollback")
        hit = admin.post("/v1/collections/docs/search", json={"query": "fire", "k": 3})
        assert hit.headers["X-Model-Version"] == "lee@1"
        forced = admin.post("/v1/collections/docs/search", json={"query": "fire"},
                            headers={"X-Embedops-Version": "candidate"})
        assert forced.status_code == 409
    last = audit.read(ws)[-1]
    assert last["action"] == "rollout.rollback" and last["who"] == "gate-evaluator"
    assert "p99_ms broken" in last["reason"]
