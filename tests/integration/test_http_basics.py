"""The HTTP service end to end on a real uvicorn: health, auth and roles, the error envelope,
limits, request ids, models, word queries, embed with its cache, and /metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serve_helpers import publish_lee_model, running_server

from embedops.config import Workspace
from embedops.engine import audit
from embedops.serve.app import create_app
from embedops.serve.keys import KeyStore
from embedops.serve.settings import ServeSettings


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    ws = Workspace(tmp_path_factory.mktemp("http") / "ws").ensure()
    mv = publish_lee_model(ws)
    keys = KeyStore(ws)
    tokens = {role: keys.create(role)[0] for role in ("read", "write", "admin")}
    settings = ServeSettings(
        home=str(ws.home), max_batch=8, max_text_chars=200, max_body_bytes=20_000, max_k=50,
        cache_size=100,
    )
    with running_server(create_app(settings)) as base:
        yield {"base": base, "keys": tokens, "model": mv.ref, "ws": ws}


def _client(served: dict, role: str | None = "read") -> httpx.Client:
    headers = {"Authorization": f"Bearer {served['keys'][role]}"} if role else {}
    return httpx.Client(base_url=served["base"], headers=headers, timeout=30)


def _error(resp: httpx.Response, status: int, code: str | None = None) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"])
    if code:
        assert body["error"]["code"] == code
    return str(body["error"]["message"])


def test_health_ready_and_docs(served: dict) -> None:
    with _client(served, None) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        assert c.get("/readyz").json()["status"] == "ready"
        assert "/v1/embed" in c.get("/openapi.json").json()["paths"]
        assert c.get("/docs").status_code == 200


def test_auth_401_403_and_header_forms(served: dict) -> None:
    with _client(served, None) as c:
        assert "API key" in _error(c.get("/v1/models"), 401, "unauthorized")
        _error(c.get("/v1/models", headers={"X-API-Key": "eok_nope"}), 401)
        ok = c.get("/v1/models", headers={"X-API-Key": served["keys"]["read"]})
        assert ok.status_code == 200
    with _client(served, "read") as c:
        msg = _error(c.post("/v1/collections", json={"name": "x", "model": "lee"}), 403)
        assert "needs 'admin'" in msg


def test_revoked_key_is_refused_by_the_running_server(served: dict) -> None:
    store = KeyStore(served["ws"])
    key, info = store.create("read", "short-lived")
    with httpx.Client(base_url=served["base"], headers={"X-API-Key": key}) as c:
        assert c.get("/v1/models").status_code == 200
        store.revoke(info.id)
        assert "revoked" in _error(c.get("/v1/models"), 401)


def test_models_list_and_show(served: dict) -> None:
    with _client(served) as c:
        refs = [m["ref"] for m in c.get("/v1/models").json()["models"]]
        assert refs == [served["model"]]
        shown = c.get(f"/v1/models/{served['model']}")
        assert shown.json()["manifest"]["dim"] == 32
        assert shown.headers["x-model-version"] == served["model"]
        assert "known models: lee" in _error(c.get("/v1/models/nosuch"), 404, "model_not_found")
        _error(c.get("/v1/models/bad name!"), 400)  # OpenAI's status for a bad request


def test_validation_errors_use_the_envelope(served: dict) -> None:
    with _client(served) as c:
        msg = _error(c.post("/v1/embed", json={"texts": "not a list"}), 422, "invalid_input")
        assert "texts" in msg
        _error(c.post("/v1/embed", content=b"{not json", headers={"content-type":
                                                               "application/json"}), 422)
        _error(c.post("/v1/embed", json={"texts": ["a"], "extra": 1}), 422)
        _error(c.get("/v1/nowhere"), 404, "not_found")
        _error(c.delete("/v1/models"), 405)


def test_limits_name_the_limit(served: dict) -> None:
    with _client(served) as c:
        assert "limit is 8" in _error(c.post("/v1/embed", json={"texts": ["a"] * 9}), 413)
        assert "limit is 200" in _error(c.post("/v1/embed", json={"texts": ["a" * 201]}), 413)
        big = {"texts": ["word " * 30] * 8, "pad": "x" * 30_000}
        assert "limit is 20000 bytes" in _error(c.post("/v1/embed", json=big), 413)
        q = {"word": "government", "k": 51}
        assert "limit of 50" in _error(c.get("/v1/words/neighbours", params=q), 413)


def test_body_limit_without_content_length(served: dict) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"texts": ["'
        for _ in range(30):
            yield b"x" * 1000
        yield b'"]}'

    with _client(served) as c:
        resp = c.post("/v1/embed", content=chunks(), headers={"content-type": "application/json"})
        assert "limit is 20000 bytes" in _error(resp, 413, "limit_exceeded")


def test_request_id_echoed_or_generated(served: dict) -> None:
    with _client(served) as c:
        assert c.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == (
            "abc-123"
        )
        generated = c.get("/healthz", headers={"X-Request-ID": "bad id; drop"}).headers
        assert len(generated["x-request-id"]) == 32


def test_word_queries_get_and_post(served: dict) -> None:
    with _client(served) as c:
        got = c.get("/v1/words/neighbours", params={"word": "government", "k": 5})
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["model_version"] == served["model"] and len(body["neighbours"]) == 5
        posted = c.post("/v1/words/neighbours", json={"word": "government", "k": 5}).json()
        assert posted["neighbours"] == body["neighbours"]
        sim = c.post("/v1/words/similarity", json={"a": "police", "b": "police"}).json()
        assert sim["similarity"] == pytest.approx(1.0, abs=1e-5)
        ana = c.get("/v1/words/analogy", params={"a": "man", "b": "king", "c": "woman", "k": 3})
        assert ana.status_code == 200 and len(ana.json()["results"]) == 3
        _error(c.get("/v1/words/neighbours", params={"word": "qqqzzzxx"}), 404,
               "out_of_vocabulary")


def test_embed_cache_and_metrics(served: dict) -> None:
    texts = ["the government said on Monday", "fire crews fought the bushfires"]
    with _client(served) as c:
        first = c.post("/v1/embed", json={"texts": texts}).json()
        again = c.post("/v1/embed", json={"texts": [texts[1], " the  government said on Monday"]})
        assert first["model_version"] == served["model"] and first["dim"] == 32
        assert first["cache_hits"] == 0 and again.json()["cache_hits"] == 2
        assert again.json()["vectors"] == first["vectors"][::-1]
        assert again.headers["x-model-version"] == served["model"]
        # An error of our own, so the error counter is there whatever ran before in this worker.
        assert c.post("/v1/embed", json={"texts": ["a"] * 9}).status_code == 413
        metrics = c.get("/metrics").text
    assert 'embedops_http_request_seconds_count{method="POST",model_version="lee@1",' \
           'route="/v1/embed"}' in metrics
    assert "embedops_cache_hit_ratio" in metrics and "embedops_vector_norm_count" in metrics
    assert 'embedops_http_errors_total{route="/v1/embed",status="413"}' in metrics
    assert "embedops_oov_rate" in metrics


def test_no_auth_must_be_explicit(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    app = create_app(ServeSettings(home=str(ws.home), auth=False))
    with running_server(app) as base:
        assert httpx.get(f"{base}/v1/models").status_code == 200
    assert audit.read(ws) == []
