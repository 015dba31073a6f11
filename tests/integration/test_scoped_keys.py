"""Scoped API keys on a real server: a matrix of key scopes x routes (collections, items,
search, index, rollout, migrate, drift, golden sets, /v1/embeddings, /metrics, the console),
where a collection out of scope answers exactly like a missing one, and a revoked key refused
by separate server processes within a second."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from console_helpers import signed_in
from serve_helpers import free_port, lee_documents, publish_lee_model, running_server, wait_until

from embedops.config import Workspace
from embedops.serve.app import create_app
from embedops.serve.keys import KeyStore
from embedops.serve.settings import ServeSettings

DOCS = lee_documents(20)
COLLECTIONS = ["acme-docs", "beta-docs", "shared"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    ws = Workspace(tmp_path_factory.mktemp("scoped") / "ws").ensure()
    publish_lee_model(ws)
    store = KeyStore(ws)
    keys = {
        "admin": store.create("admin")[0],
        "acme_read": store.create("read", "acme-r", prefixes=["acme-"])[0],
        "acme_admin": store.create("admin", "acme-a", prefixes=["acme-"])[0],
        "shared_write": store.create("write", "shared-w", collections=["shared"])[0],
    }
    with running_server(create_app(ServeSettings(home=str(ws.home)))) as base:
        clients = {who: httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=60)
                   for who, key in keys.items()}
        admin = clients["admin"]
        for name in COLLECTIONS:
            assert admin.post("/v1/collections", json={"name": name, "model": "lee"}
                              ).status_code == 201
            assert admin.post(f"/v1/collections/{name}/items", json={"items": DOCS}
                              ).status_code == 200
            assert admin.post(f"/v1/collections/{name}/index", json={"kind": "flat"}
                              ).status_code == 200
        yield {"base": base, "ws": ws, "keys": keys, **clients}
        for client in clients.values():
            client.close()


# (method, path template, json body) of every route that names a collection
ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/v1/collections/{c}", None),
    ("GET", "/v1/collections/{c}/items?ids=doc1", None),
    ("POST", "/v1/collections/{c}/items/where", {"filters": {}}),
    ("POST", "/v1/collections/{c}/search", {"query": "fire in the bush", "k": 3}),
    ("GET", "/v1/collections/{c}/index", None),
    ("POST", "/v1/collections/{c}/index/verify", None),
    ("GET", "/v1/collections/{c}/rollout", None),
    ("GET", "/v1/collections/{c}/migrate", None),
    ("POST", "/v1/collections/{c}/items", {"items": DOCS[:1]}),
    ("POST", "/v1/collections/{c}/rollout/abort", None),
    ("POST", "/v1/golden/none/run?collection={c}", None),
]


def _call(client: httpx.Client, method: str, path: str, body: Any, name: str) -> httpx.Response:
    return client.request(method, path.format(c=name), json=body)


def _error(resp: httpx.Response, name: str) -> tuple[int, str, str, str]:
    error = resp.json()["error"]
    return (resp.status_code, error["code"], error["message"].replace(name, "<c>"),
            str(error.get("hint")))


# key -> collections it may see
SCOPES = {"acme_read": {"acme-docs"}, "acme_admin": {"acme-docs"}, "shared_write": {"shared"}}


@pytest.mark.parametrize("who", sorted(SCOPES))
@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_scope_matrix(served: dict[str, Any], who: str, method: str, path: str,
                      body: Any) -> None:
    client = served[who]
    missing = _call(client, method, path, body, "acme-nope")
    for name in COLLECTIONS:
        got = _call(client, method, path, body, name)
        if name in SCOPES[who]:
            # in scope: whatever an unscoped key of the same role would get
            same_role = {"acme_read": "read", "acme_admin": "admin", "shared_write": "write"}
            if same_role[who] == "admin":
                want = _call(served["admin"], method, path, body, name).status_code
                assert got.status_code == want, (name, got.text)
            else:
                assert got.status_code != 404 or "golden" in path, (name, got.text)
        else:
            assert _error(got, name) == _error(missing, "acme-nope"), got.text
            assert "known collections" not in got.text
            for other in COLLECTIONS:
                assert other == name or other not in got.text


def test_listings_show_only_what_the_key_may_see(served: dict[str, Any]) -> None:
    def names(client: httpx.Client) -> list[str]:
        return [c["name"] for c in client.get("/v1/collections").json()["collections"]]

    assert names(served["admin"]) == sorted(COLLECTIONS)
    assert names(served["acme_read"]) == ["acme-docs"]
    assert names(served["shared_write"]) == ["shared"]
    served["admin"].post("/v1/golden", json={"name": "beta-set", "collection": "beta-docs"})
    sets = served["acme_read"].get("/v1/golden").json()["sets"]
    assert all(s["name"] != "beta-set" for s in sets)


def test_scoped_create_metrics_models_and_embeddings(served: dict[str, Any]) -> None:
    acme = served["acme_admin"]
    denied = acme.post("/v1/collections", json={"name": "beta-new", "model": "lee"})
    assert denied.status_code == 403
    assert acme.post("/v1/collections", json={"name": "acme-new", "model": "lee"}
                     ).status_code == 201
    assert acme.delete("/v1/collections/beta-docs").status_code == 404
    assert served["admin"].get("/v1/collections/beta-docs").status_code == 200
    assert served["acme_read"].get("/metrics").status_code == 403
    # models are shared: a scoped key may list them and embed with any of them
    assert served["acme_read"].get("/v1/models").status_code == 200
    embedded = served["acme_read"].post("/v1/embeddings", json={"model": "lee",
                                                                "input": ["a fire"]})
    assert embedded.status_code == 200, embedded.text


def test_console_shows_and_opens_only_scoped_collections(served: dict[str, Any]) -> None:
    with signed_in(served["base"], served["keys"]["acme_read"]) as reader:
        page = reader.get("/ui/overview")
        assert page.status_code == 200 and "acme-docs" in page.text
        assert "beta-docs" not in page.text and "shared" not in page.text
        search = reader.get("/ui/search")
        assert "beta-docs" not in search.text
        hidden = reader.get("/ui/search/results", params={"collection": "beta-docs", "q": "x"})
        missing = reader.get("/ui/search/results", params={"collection": "acme-no", "q": "x"})
        assert hidden.status_code == missing.status_code == 404
        assert "no collection named &#39;beta-docs&#39;" in hidden.text
        assert "no collection named &#39;acme-no&#39;" in missing.text
        assert "shared" not in hidden.text and "known collections" not in hidden.text
        confirm_hidden = reader.get("/ui/rollouts/beta-docs/confirm", params={"action": "abort"})
        confirm_missing = reader.get("/ui/rollouts/acme-no/confirm", params={"action": "abort"})
        assert confirm_hidden.status_code == confirm_missing.status_code == 404


def _serve(ws: Workspace, port: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "embedops.cli.main", "--home", str(ws.home), "serve",
           "--port", str(port), "--no-warmup", "--log-level", "warning"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.slow
def test_revocation_is_refused_by_every_process_within_a_second(served: dict[str, Any]) -> None:
    ws = served["ws"]
    store = KeyStore(ws)
    key, info = store.create("read", "to-revoke", prefixes=["acme-"])
    ports = [free_port(), free_port()]
    procs = [_serve(ws, port) for port in ports]
    try:
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        for base in bases:
            wait_until(lambda b=base: httpx.get(f"{b}/healthz", timeout=2).status_code == 200,
                       timeout=120, what="a server process")
        headers = {"X-API-Key": key}
        for base in [served["base"], *bases]:  # each process has verified (and cached) it
            assert httpx.get(f"{base}/v1/collections", headers=headers).status_code == 200
        store.revoke(info.id)
        revoked = time.monotonic()
        for base in [served["base"], *bases]:
            wait_until(lambda b=base: httpx.get(f"{b}/v1/collections", headers=headers,
                                                timeout=2).status_code == 401,
                       timeout=1.0, what="refusal")
        assert time.monotonic() - revoked < 3.0  # three servers polled one after another
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


def test_quotas_per_key_answer_429_with_retry_after(served: dict[str, Any]) -> None:
    from embedops.engine import audit

    ws, base, admin = served["ws"], served["base"], served["admin"]
    store = KeyStore(ws)
    assert admin.post("/v1/collections", json={"name": "quota-c", "model": "lee"}
                      ).status_code == 201

    def client(key: str) -> httpx.Client:
        return httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=60)

    # embed tokens per day, shared by both embedding routes
    tokens_key, tokens_info = store.create("read", "tok", tokens_per_day=12)
    with client(tokens_key) as tok:
        first = tok.post("/v1/embeddings", json={"model": "lee", "input": "a fire in the bush"})
        assert first.status_code == 200, first.text
        used = first.json()["usage"]["total_tokens"]
        assert used > 0
        over = tok.post("/v1/embed", json={"texts": ["fire " * 12]})
        assert over.status_code == 429 and over.json()["error"]["code"] == "quota_exceeded"
        assert 0 < int(over.headers["retry-after"]) <= 86400
        openai_over = tok.post("/v1/embeddings", json={"model": "lee", "input": "fire " * 12})
        assert openai_over.status_code == 429 and "retry-after" in openai_over.headers
    assert store.usage(tokens_info.id, int(time.time() // 86400)) == used
    # items stored in the key's collections
    items_key, items_info = store.create("write", "items", collections=["quota-c"], max_items=5)
    with client(items_key) as writer:
        assert writer.post("/v1/collections/quota-c/items", json={"items": DOCS[:5]}
                           ).status_code == 200
        again = writer.post("/v1/collections/quota-c/items", json={"items": DOCS[:5]})
        assert again.status_code == 200  # the same ids: nothing new
        full = writer.post("/v1/collections/quota-c/items", json={"items": DOCS[5:6]})
        assert full.status_code == 429 and full.json()["error"]["code"] == "quota_exceeded"
        assert full.headers["retry-after"] == "3600"
    # the key's own rate limit, on a server whose roles are unlimited
    rate_key, rate_info = store.create("read", "rate", rate_limit="2/minute")
    with client(rate_key) as limited:
        codes = [limited.get("/v1/models").status_code for _ in range(3)]
        assert codes == [200, 200, 429]
    refused = [e for e in audit.read(ws) if e["action"] == "quota.exceeded"]
    assert {e["who"] for e in refused} >= {tokens_info.id, items_info.id}
    assert all("eok_" not in str(e) and "fire" not in str(e) for e in refused)
    metrics = admin.get("/metrics").text
    assert f'embedops_quota_refusals_total{{key_id="{tokens_info.id}",quota="tokens_per_day"}}' \
        in metrics
    assert f'embedops_key_embed_tokens_total{{key_id="{tokens_info.id}"}} {float(used)}' in metrics
