"""Which searches the server answers on its event loop (``routes_search.cheap``): only plain
dense kNN with the query vector at hand against a loaded index; everything else goes to the
thread pool. Checked on a real app and a real server: the decision, and that both paths give
the same answers."""

from __future__ import annotations

import httpx
import pytest
from serve_helpers import lee_documents, publish_lee_model, running_server

from embedops.config import Workspace
from embedops.serve.app import create_app
from embedops.serve.routes_search import CHEAP_MAX_K, cheap
from embedops.serve.schemas import SearchRequest
from embedops.serve.settings import ServeSettings

DOCS = lee_documents(30)


def test_cheap_searches_are_exactly_the_bounded_ones(tmp_path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    publish_lee_model(ws)
    app = create_app(ServeSettings(home=str(ws.home), auth=False, warmup=False))
    ctx = app.state.ctx
    text = DOCS[3]["text"][:200]
    with running_server(app) as base, httpx.Client(base_url=base, timeout=60) as http:
        assert http.post("/v1/collections", json={"name": "lee", "model": "lee"}).status_code \
            == 201
        assert http.post("/v1/collections/lee/items", json={"items": DOCS}).status_code == 200
        assert http.post("/v1/collections/lee/index", json={"kind": "hnsw"}).status_code == 200

        def req(**fields) -> SearchRequest:
            return SearchRequest(**{"query": text, **fields})

        assert not cheap(ctx, "lee", req())  # not cached yet: encoding may be slow
        first = http.post("/v1/collections/lee/search", json={"query": text, "k": 5}).json()
        assert cheap(ctx, "lee", req())  # now cached, index loaded
        again = http.post("/v1/collections/lee/search", json={"query": text, "k": 5}).json()
        assert [h["id"] for h in again["hits"]] == [h["id"] for h in first["hits"]]
        assert again["cache_hit"] is True
        assert cheap(ctx, "lee", SearchRequest(vector=[0.1] * 32))
        for fields in ({"mode": "hybrid"}, {"mode": "lexical"}, {"mode": "two_stage"},
                       {"filters": {"n": 1}}, {"k": CHEAP_MAX_K + 1}, {"model_version": "lee"}):
            assert not cheap(ctx, "lee", req(**fields)), fields
        assert not cheap(ctx, "missing", req())


@pytest.mark.parametrize("inline_cheap", [True, False])
def test_both_paths_answer_alike(tmp_path, inline_cheap: bool) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    publish_lee_model(ws)
    settings = ServeSettings(home=str(ws.home), auth=False, inline_cheap_search=inline_cheap)
    with running_server(create_app(settings)) as base, httpx.Client(base_url=base,
                                                                    timeout=60) as http:
        http.post("/v1/collections", json={"name": "lee", "model": "lee"})
        http.post("/v1/collections/lee/items", json={"items": DOCS})
        http.post("/v1/collections/lee/index", json={"kind": "flat"})
        url = "/v1/collections/lee/search"
        answers = [http.post(url, json={"query": DOCS[i % 5]["text"][:200], "k": 3})
                   for i in range(10)]
        assert all(a.status_code == 200 for a in answers)
        ids = [[h["id"] for h in a.json()["hits"]] for a in answers]
        assert ids[5:] == ids[:5]  # cached (inline when allowed) == first, encoded, answers
        assert [a.json()["cache_hit"] for a in answers] == [False] * 5 + [True] * 5
        missing = http.post("/v1/collections/nope/search", json={"query": "fire"})
        assert missing.status_code == 404 and set(missing.json()) == {"error"}
