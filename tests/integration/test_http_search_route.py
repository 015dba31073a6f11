"""The search route's own request handling (``SearchRoute``: no FastAPI dependency solving) on a
real uvicorn: auth, body parsing and validation, limits, errors, headers, metrics, the log line
and the OpenAPI operation must be what every other route gives."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator

import httpx
import pytest
from serve_helpers import lee_documents, publish_lee_model, running_server, wait_until
from starlette.requests import Request

from embedops.api import Embedops
from embedops.config import Workspace
from embedops.errors import Forbidden
from embedops.serve.app import create_app
from embedops.serve.auth import authorize
from embedops.serve.keys import KeyStore, Role
from embedops.serve.logging import LOGGER
from embedops.serve.settings import ServeSettings

URL = "/v1/collections/lee/search"
DOCS = lee_documents(30)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.fields: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            self.fields.append(fields)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    ws = Workspace(tmp_path_factory.mktemp("search") / "ws").ensure()
    publish_lee_model(ws)
    api = Embedops(ws)  # the data goes in directly: the server's limits are set small below
    api.collections.create("lee", model="lee")
    api.upsert_items("lee", DOCS)
    api.build_index("lee", "flat", quiet=True)
    api.close()
    keys = KeyStore(ws)
    tokens = {role: keys.create(role)[0] for role in ("read", "write", "admin")}
    settings = ServeSettings(home=str(ws.home), max_text_chars=200, max_body_bytes=20_000,
                             max_k=50, log_level="info")
    app = create_app(settings)
    records, logger = _Records(), logging.getLogger(LOGGER)
    level = logger.level
    logger.addHandler(records)
    logger.setLevel(logging.INFO)
    try:
        with running_server(app) as base:
            bearer = {"Authorization": f"Bearer {tokens['read']}"}
            read = httpx.Client(base_url=base, headers=bearer, timeout=60)
            anon = httpx.Client(base_url=base, timeout=60)
            yield {"app": app, "base": base, "keys": tokens, "read": read, "anon": anon,
                   "records": records}
            for client in (read, anon):
                client.close()
    finally:
        logger.removeHandler(records)
        logger.setLevel(level)


def _error(resp: httpx.Response, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    return str(body["error"]["message"])


def test_search_answers_with_hits_headers_and_the_key_id_in_the_log(served: dict) -> None:
    resp = served["read"].post(URL, json={"query": DOCS[3]["text"][:150], "k": 3},
                               headers={"X-Request-ID": "search-1"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["hits"][0]["id"] == "doc3" and len(body["hits"]) == 3
    assert set(body) == {"model_version", "hits", "mode", "took_ms", "cache_hit", "query_id"}
    assert resp.headers["x-model-version"] == "lee@1" == body["model_version"]
    assert resp.headers["x-request-id"] == "search-1"
    assert resp.headers["content-type"] == "application/json"
    read_id = served["keys"]["read"].split("_")[1]

    def line() -> list[dict]:  # written once the answer is sent, so maybe just after
        return [f for f in served["records"].fields if f.get("request_id") == "search-1"]

    wait_until(lambda: line(), timeout=10, what="the request's log line")
    assert line()[0]["key_id"] == read_id and line()[0]["status"] == 200
    assert line()[0]["route"] == "/v1/collections/{name}/search"


def test_auth_401_and_the_header_forms(served: dict) -> None:
    anon, key = served["anon"], served["keys"]["read"]
    q = {"query": "fire", "k": 2}
    assert "API key" in _error(anon.post(URL, json=q), 401, "unauthorized")
    assert anon.post(URL, json=q).headers["www-authenticate"] == "Bearer"
    assert "malformed" in _error(anon.post(URL, json=q, headers={"X-API-Key": "eok_x"}), 401,
                                 "unauthorized")
    _error(anon.post(URL, json=q, headers={"Authorization": f"Basic {key}"}), 401, "unauthorized")
    _error(anon.post(URL, json=q, headers={"Authorization": "Bearer"}), 401, "unauthorized")
    for headers in ({"X-API-Key": key}, {"Authorization": f"bearer {key}"},
                    {"Authorization": f"Bearer  {key}"}):
        assert anon.post(URL, json=q, headers=headers).status_code == 200, headers
    # Auth comes before the body is looked at: a caller without a key learns nothing about it.
    _error(anon.post(URL, content=b"{nope", headers={"content-type": "application/json"}), 401,
           "unauthorized")


def test_a_role_below_the_route_is_403(served: dict) -> None:
    # Every key may search (read is the lowest role), so 403 is checked on the function the
    # route calls, with a read key against a higher role.
    scope = {"type": "http", "app": served["app"], "headers": [
        (b"authorization", f"Bearer {served['keys']['read']}".encode())]}
    with pytest.raises(Forbidden, match="needs 'write'"):
        authorize(Request(scope), Role.write)
    assert authorize(Request(scope), Role.read).role is Role.read


def test_bad_bodies_are_422_in_the_envelope(served: dict) -> None:
    read = served["read"]
    json_ct = {"content-type": "application/json"}
    assert "JSON" in _error(read.post(URL, content=b'{"query": ', headers=json_ct), 422,
                            "invalid_input")
    assert "Field required" in _error(read.post(URL, content=b"", headers=json_ct), 422,
                                      "invalid_input")
    assert "content-type" in _error(read.post(URL, content=b'{"query": "fire"}',
                                              headers={"content-type": "text/plain"}),
                                    422, "invalid_input")
    assert read.post(URL, content=b'{"query": "fire"}',
                     headers={"content-type": "application/json; charset=utf-8"}).status_code \
        == 200
    msg = _error(read.post(URL, json={"query": "fire", "colour": "red"}), 422, "invalid_input")
    assert "colour" in msg and "Extra inputs" in msg
    assert "k:" in _error(read.post(URL, json={"query": "fire", "k": 0}), 422, "invalid_input")
    assert "mode" in _error(read.post(URL, json={"query": "fire", "mode": "fuzzy"}), 422,
                            "invalid_input")
    _error(read.post(URL, json={"query": "fire", "hybrid_weight": 1.5}), 422, "invalid_input")
    _error(read.post(URL, json={"query": ""}), 422, "invalid_input")
    _error(read.post(URL, json=["fire"]), 422, "invalid_input")
    _error(read.post(URL, json={"query": "fire", "filters": {"n": {"x": 1}}}), 422,
           "invalid_input")


def test_limits_are_413_and_name_the_limit(served: dict) -> None:
    read = served["read"]
    assert "limit of 50" in _error(read.post(URL, json={"query": "fire", "k": 51}), 413,
                                   "limit_exceeded")
    assert "limit is 200" in _error(read.post(URL, json={"query": "a" * 201}), 413,
                                    "limit_exceeded")
    big = {"query": "fire", "filters": {"pad": "x" * 30_000}}
    assert "limit is 20000 bytes" in _error(read.post(URL, json=big), 413, "limit_exceeded")

    def chunks() -> Iterator[bytes]:  # no content-length: the limit applies while reading
        yield b'{"query": "'
        for _ in range(30):
            yield b"x" * 1000
        yield b'"}'

    resp = read.post(URL, content=chunks(), headers={"content-type": "application/json"})
    assert "limit is 20000 bytes" in _error(resp, 413, "limit_exceeded")


def test_unknown_collection_404_and_vector_dimension_409(served: dict) -> None:
    read = served["read"]
    missing = read.post("/v1/collections/nope/search", json={"query": "fire"})
    assert "lee" in _error(missing, 404, "collection_not_found")
    short = read.post(URL, json={"vector": [0.5] * 7})
    assert "dim 7" in _error(short, 409, "dimension_mismatch") and "dim 32" in short.text
    assert read.get(URL).status_code == 405


def test_nan_in_a_vector_never_breaks_the_json(served: dict) -> None:
    # Python's json (and pydantic) accept NaN literals in a body; whatever the answer, it is a
    # valid JSON document (strict parsing, no NaN) and not a 5xx.
    body = "{\"vector\": [" + ", ".join(["NaN"] * 32) + "], \"k\": 3}"
    resp = served["read"].post(URL, content=body.encode(),
                               headers={"content-type": "application/json"})
    assert resp.status_code < 500, resp.text
    import json

    parsed = json.loads(resp.text, parse_constant=lambda c: pytest.fail(f"{c} in the answer"))
    for hit in parsed.get("hits", []):
        assert hit["score"] is None or math.isfinite(hit["score"])


def test_metrics_keep_the_route_label(served: dict) -> None:
    read = served["read"]
    for _ in range(2):  # a miss, then a hit of the query cache
        assert read.post(URL, json={"query": "fire", "k": 2}).status_code == 200
    assert read.post(URL, json={"query": "fire", "k": 51}).status_code == 413
    assert read.post(URL, json={"query": "fire", "k": 2, "mode": "lexical"}).status_code == 200
    text = read.get("/metrics").text
    route = 'route="/v1/collections/{name}/search"'
    assert f'embedops_http_request_seconds_count{{method="POST",model_version="lee@1",{route}}}' \
        in text
    assert f'embedops_http_errors_total{{{route},status="413"}}' in text
    assert 'embedops_search_seconds_count{backend="flat",mode="dense"}' in text
    assert 'embedops_search_seconds_count{backend="bm25",mode="lexical"}' in text
    assert 'embedops_cache_lookups_total{result="hit"}' in text


def test_openapi_still_describes_the_operation(served: dict) -> None:
    spec = served["anon"].get("/openapi.json").json()
    op = spec["paths"]["/v1/collections/{name}/search"]["post"]
    assert op["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SearchRequest"}
    assert op["requestBody"]["required"] is True
    assert {"200", "422"} <= set(op["responses"])
    assert {"HTTPBearer": []} in op["security"] and {"APIKeyHeader": []} in op["security"]
    assert [p["name"] for p in op["parameters"]] == ["name"]
    schema = spec["components"]["schemas"]["SearchRequest"]
    assert schema["additionalProperties"] is False
    assert {"query", "vector", "k", "mode", "filters", "model_version", "hybrid_weight",
            "search_params"} == set(
        schema["properties"])
