"""Search with a query vector over HTTP (``"vector": [...]`` instead of ``"query"``) on a real
uvicorn with the real facade, catalog and FAISS index; and a write made through the API is seen
by the very next search."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from serve_helpers import lee_documents, publish_lee_model, running_server

from embedops.config import Workspace
from embedops.serve.app import create_app
from embedops.serve.settings import ServeSettings

DOCS = lee_documents(40)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    ws = Workspace(tmp_path_factory.mktemp("vec") / "ws").ensure()
    publish_lee_model(ws)
    settings = ServeSettings(home=str(ws.home), auth=False, max_k=100)
    with running_server(create_app(settings)) as base, httpx.Client(base_url=base,
                                                                    timeout=60) as http:
        assert http.post("/v1/collections", json={"name": "lee", "model": "lee"}).status_code \
            == 201
        assert http.post("/v1/collections/lee/items", json={"items": DOCS}).status_code == 200
        assert http.post("/v1/collections/lee/index", json={"kind": "hnsw"}).status_code == 200
        yield http


def _ids(resp: httpx.Response) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [h["id"] for h in resp.json()["hits"]]


def test_vector_search_matches_text_search(client: httpx.Client) -> None:
    text = DOCS[5]["text"][:300]
    vec = client.post("/v1/embed", json={"texts": [text], "model": "lee"}).json()["vectors"][0]
    by_text = client.post("/v1/collections/lee/search", json={"query": text, "k": 5})
    by_vec = client.post("/v1/collections/lee/search", json={"vector": vec, "k": 5})
    assert _ids(by_vec) == _ids(by_text) and by_vec.headers["x-model-version"] == "lee@1"
    hybrid = {"query": text, "k": 5, "mode": "hybrid"}
    assert _ids(client.post("/v1/collections/lee/search", json={**hybrid, "vector": vec})) \
        == _ids(client.post("/v1/collections/lee/search", json=hybrid))


def test_bad_vectors_get_clear_errors(client: httpx.Client) -> None:
    url = "/v1/collections/lee/search"
    short = client.post(url, json={"vector": [0.5] * 7})
    assert short.status_code == 409 and "dim 7" in short.text and "dim 32" in short.text
    assert client.post(url, json={"vector": ["x"] * 32}).status_code == 422
    assert client.post(url, json={"vector": []}).status_code == 422
    both = client.post(url, json={"vector": [0.5] * 32, "query": "fire"})
    assert both.status_code == 422 and "not both" in both.text
    lexical = client.post(url, json={"vector": [0.5] * 32, "mode": "lexical"})
    assert lexical.status_code == 422 and "query text" in lexical.text
    assert client.post(url, json={"k": 3}).status_code == 422


def test_a_write_is_seen_by_the_next_search(client: httpx.Client) -> None:
    text = "the cricket team won the test match in adelaide"
    item = {"id": "fresh", "text": text, "metadata": {"n": -1}}
    assert client.post("/v1/collections/lee/items", json={"items": [item]}).status_code == 200
    found = client.post("/v1/collections/lee/search", json={"query": text, "k": 1})
    assert _ids(found) == ["fresh"]
    gone = client.post("/v1/collections/lee/items/delete", json={"ids": ["fresh"]})
    assert gone.status_code == 200, gone.text
    assert "fresh" not in _ids(client.post("/v1/collections/lee/search",
                                           json={"query": text, "k": 5}))


def test_search_params_over_http(client: httpx.Client) -> None:
    url = "/v1/collections/lee/search"
    text = DOCS[5]["text"][:300]
    wide = client.post(url, json={"query": text, "k": 5, "search_params": {"ef_search": 256}})
    assert _ids(wide) == _ids(client.post(url, json={"query": text, "k": 5}))
    unknown = client.post(url, json={"query": text, "search_params": {"nprobe": 4}})
    assert unknown.status_code == 422
    assert "not a search parameter of the hnsw index" in unknown.json()["error"]["message"]
    for bad in ({"ef_search": 0}, {"ef_search": "64"}, {"ef_search": 6.5}, {"ef_search": True},
                [["ef_search", 64]]):
        resp = client.post(url, json={"query": text, "search_params": bad})
        assert resp.status_code == 422, (bad, resp.text)
        assert set(resp.json()) == {"error"}
    lexical = client.post(url, json={"query": text, "mode": "lexical",
                                     "search_params": {"ef_search": 64}})
    assert lexical.status_code == 422 and "lexical search has none" in lexical.text
