"""Collections, items, search and index over HTTP on a real uvicorn, with the real facade,
catalog and FAISS index, and a word2vec model trained on gensim's Lee corpus."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from serve_helpers import lee_documents, publish_lee_model, running_server

from embedops.config import Workspace
from embedops.engine import audit
from embedops.serve.app import create_app
from embedops.serve.keys import KeyStore
from embedops.serve.settings import ServeSettings

DOCS = lee_documents(60)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    ws = Workspace(tmp_path_factory.mktemp("coll") / "ws").ensure()
    publish_lee_model(ws)
    publish_lee_model(ws)  # lee@2: same dim and tokenizer, other vectors
    publish_lee_model(ws, "other")
    publish_lee_model(ws, "small", dim=16)
    keys = KeyStore(ws)
    tokens = {role: keys.create(role)[0] for role in ("read", "write", "admin")}
    settings = ServeSettings(home=str(ws.home), max_batch=100, max_k=100)
    with running_server(create_app(settings)) as base:
        clients = {
            role: httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=60)
            for role, key in tokens.items()
        }
        admin, write = clients["admin"], clients["write"]
        assert admin.post("/v1/collections", json={"name": "lee", "model": "lee@1"}).status_code \
            == 201
        resp = write.post("/v1/collections/lee/items", json={"items": DOCS})
        assert resp.status_code == 200, resp.text
        built = admin.post("/v1/collections/lee/index", json={"kind": "flat"})
        assert built.status_code == 200, built.text
        yield {"base": base, "ws": ws, **clients}
        for c in clients.values():
            c.close()


def _code(resp: httpx.Response) -> tuple[int, str]:
    return resp.status_code, resp.json()["error"]["code"]


def test_collection_list_show_and_errors(served: dict) -> None:
    read, admin = served["read"], served["admin"]
    names = [c["name"] for c in read.get("/v1/collections").json()["collections"]]
    assert names == ["lee"]
    shown = read.get("/v1/collections/lee")
    assert shown.status_code == 200 and shown.headers["x-model-version"] == "lee@1"
    missing = read.get("/v1/collections/nope")
    assert _code(missing) == (404, "collection_not_found") and "lee" in missing.text
    again = admin.post("/v1/collections", json={"name": "lee", "model": "lee"})
    assert _code(again)[0] == 409
    assert _code(admin.post("/v1/collections", json={"name": "x", "model": "nope"})) == (
        404, "model_not_found")
    assert _code(admin.post("/v1/collections", json={"name": "bad name", "model": "lee"}))[0] \
        == 422
    assert _code(served["write"].post("/v1/collections", json={"name": "y", "model": "lee"})) \
        == (403, "forbidden")


def test_upsert_is_idempotent(served: dict) -> None:
    again = served["write"].post("/v1/collections/lee/items", json={"items": DOCS[:10]}).json()
    assert again["written"] == 0 and again["unchanged"] == 10
    assert again["model_version"] == "lee@1"
    assert _code(served["read"].post("/v1/collections/lee/items", json={"items": DOCS[:1]})) \
        == (403, "forbidden")
    dup = served["write"].post("/v1/collections/lee/items", json={"items": DOCS[:1] * 2})
    assert _code(dup)[0] == 422 and "duplicate" in dup.text


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid", "two_stage"])
def test_search_modes(served: dict, mode: str) -> None:
    resp = served["read"].post(
        "/v1/collections/lee/search", json={"query": DOCS[7]["text"][:300], "k": 5, "mode": mode}
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["mode"] == mode and len(body["hits"]) == 5
    assert body["hits"][0]["id"] == "doc7"
    scores = [h["score"] for h in body["hits"]]
    assert scores == sorted(scores, reverse=True)
    if mode != "lexical":
        assert body["model_version"] == "lee@1" == resp.headers["x-model-version"]


def test_search_filters_and_limits(served: dict) -> None:
    read = served["read"]
    q = {"query": "fire crews bushfires", "k": 10}
    halves = read.post("/v1/collections/lee/search", json={**q, "filters": {"half": "a"}}).json()
    assert halves["hits"] and all(h["metadata"]["half"] == "a" for h in halves["hits"])
    ranged = read.post("/v1/collections/lee/search",
                       json={**q, "filters": {"n": {"gte": 10, "lte": 19}}}).json()
    assert ranged["hits"] and all(10 <= h["metadata"]["n"] <= 19 for h in ranged["hits"])
    assert _code(read.post("/v1/collections/lee/search", json={**q, "k": 101}))[0] == 413
    assert _code(read.post("/v1/collections/lee/search", json={**q, "k": 0}))[0] == 422
    assert _code(read.post("/v1/collections/lee/search", json={**q, "mode": "fuzzy"}))[0] == 422
    bad_filter = read.post("/v1/collections/lee/search", json={**q, "filters": {"n": {"x": 1}}})
    assert _code(bad_filter)[0] == 422
    assert _code(read.post("/v1/collections/nope/search", json=q))[0] == 404


def test_model_version_pin(served: dict) -> None:
    read = served["read"]
    q = {"query": "fire crews bushfires", "k": 3}
    pinned = read.post("/v1/collections/lee/search", json={**q, "model_version": "lee@1"})
    assert pinned.status_code == 200 and pinned.json()["model_version"] == "lee@1"
    assert _code(read.post("/v1/collections/lee/search", json={**q, "model_version": "lee@2"})) \
        == (409, "version_mismatch")
    assert _code(read.post("/v1/collections/lee/search", json={**q, "model_version": "lee@9"})) \
        == (404, "model_not_found")
    wrong_dim = read.post("/v1/collections/lee/search", json={**q, "model_version": "small"})
    assert _code(wrong_dim) == (409, "dimension_mismatch")
    assert "dim 32" in wrong_dim.text and "dim 16" in wrong_dim.text


def test_delete_items_then_search_and_index_ops(served: dict) -> None:
    write, read, admin = served["write"], served["read"], served["admin"]
    resp = write.post("/v1/collections/lee/items/delete", json={"ids": ["doc7", "nosuch"]})
    assert resp.json()["deleted"] == 1
    hits = read.post("/v1/collections/lee/search",
                     json={"query": DOCS[7]["text"][:300], "k": 10}).json()["hits"]
    assert "doc7" not in [h["id"] for h in hits]
    status = read.get("/v1/collections/lee/index")
    assert status.status_code == 200 and status.headers["x-model-version"] == "lee@1"
    assert status.json()["items"] == 59
    assert write.post("/v1/collections/lee/index/verify").status_code == 200
    assert admin.post("/v1/collections/lee/index", json={"kind": "hnsw"}).status_code == 200
    assert _code(write.post("/v1/collections/lee/index/rollback"))[0] == 403
    rolled = admin.post("/v1/collections/lee/index/rollback")
    assert rolled.status_code == 200, rolled.text
    again = read.post("/v1/collections/lee/search", json={"query": "fire", "k": 3})
    assert again.status_code == 200
    actions = [e["action"] for e in audit.read(served["ws"])]
    assert actions[:2] == ["collection.create", "index.rebuild"]
    assert actions[-2:] == ["index.rebuild", "index.rollback"]
    assert all(e["who"] != "anonymous" and "eok_" not in str(e) for e in audit.read(served["ws"]))


def test_metrics_after_search(served: dict) -> None:
    served["read"].post("/v1/collections/lee/search", json={"query": "police", "k": 3})
    text = served["read"].get("/metrics").text
    assert 'embedops_search_seconds_count{backend=' in text
    assert 'embedops_index_items{collection="lee"}' in text
    assert 'embedops_index_freshness_age_seconds{collection="lee"}' in text
    memory = [line for line in text.splitlines()
              if line.startswith('embedops_index_memory_bytes{collection="lee"}')]
    assert len(memory) == 1 and float(memory[0].split()[-1]) > 0


def test_delete_collection_is_audited(served: dict) -> None:
    admin = served["admin"]
    assert admin.post("/v1/collections", json={"name": "tmp", "model": "other"}).status_code \
        == 201
    assert admin.delete("/v1/collections/tmp").json() == {"deleted": "tmp"}
    assert _code(admin.get("/v1/collections/tmp"))[0] == 404
    assert audit.read(served["ws"])[-1]["action"] == "collection.delete"


def test_warm_up_reports_each_collection(served: dict) -> None:
    app = create_app(ServeSettings(home=str(served["ws"].home), auth=False, inline_search=True))
    with running_server(app) as base:
        ready = httpx.get(f"{base}/readyz").json()
        found = httpx.post(f"{base}/v1/collections/lee/search",
                           json={"query": "bushfires near Sydney", "k": 2})
    assert found.status_code == 200 and found.json()["model_version"] == "lee@1"
    assert len(found.json()["hits"]) == 2
    assert ready["status"] == "ready"
    assert ready["collections"]["lee"]["state"] == "ready"


def test_items_by_id_and_ids_by_filter(served: dict) -> None:
    read = served["read"]
    got = read.get("/v1/collections/lee/items", params={"ids": ["doc1", "doc2", "nope"]})
    assert got.status_code == 200, got.text
    assert [it["id"] for it in got.json()["items"]] == ["doc1", "doc2"]
    count = read.get("/v1/collections/lee").json()["collection"]["item_count"]
    page = read.post("/v1/collections/lee/items/where", json={"limit": 5, "offset": 1})
    assert page.json()["total"] == count and len(page.json()["ids"]) == 5
    live = set(read.post("/v1/collections/lee/items/where", json={}).json()["ids"])
    half = read.post("/v1/collections/lee/items/where", json={"filters": {"half": "a"}})
    expected = [d["id"] for d in DOCS if d["metadata"]["half"] == "a" and d["id"] in live]
    assert half.json()["ids"] == expected
    bad = read.post("/v1/collections/lee/items/where", json={"filters": {"n": {"near": 1}}})
    assert bad.status_code == 422
    assert _code(read.get("/v1/collections/nope/items", params={"ids": ["doc1"]}))[0] == 404
