"""Per-key rate limits on a real uvicorn: each role's limit, 429 with ``Retry-After`` in the
envelope of the route (embedops' or OpenAI's), nothing spent by a refused request, and the
``openai`` SDK honouring ``Retry-After`` by itself."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from serve_helpers import publish_lee_model, running_server

from embedops.config import Workspace
from embedops.errors import InvalidInput
from embedops.serve.app import create_app
from embedops.serve.keys import KeyStore
from embedops.serve.settings import ServeSettings


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    ws = Workspace(tmp_path_factory.mktemp("ratelimit") / "ws").ensure()
    publish_lee_model(ws)
    store = KeyStore(ws)
    keys = {role: store.create(role)[0] for role in ("read", "write", "admin")}
    settings = ServeSettings(home=str(ws.home), rate_limit_read="3/minute",
                             rate_limit_admin="2/second")
    with running_server(create_app(settings)) as base:
        yield {"base": base, "keys": keys}


def _http(served: dict[str, Any], role: str) -> httpx.Client:
    headers = {"Authorization": f"Bearer {served['keys'][role]}"}
    return httpx.Client(base_url=served["base"], headers=headers, timeout=30)


def _openai(served: dict[str, Any], role: str, retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=served["base"] + "/v1", api_key=served["keys"][role],
                         max_retries=retries, timeout=30)


def test_a_key_over_its_roles_limit_gets_429_with_retry_after(served: dict[str, Any]) -> None:
    with _http(served, "read") as c:
        assert c.get("/v1/models").status_code == 200
        assert c.post("/v1/embed", json={"texts": ["a"]}).status_code == 200
        assert c.post("/v1/embeddings", json={"model": "lee", "input": "a"}).status_code == 200
        refused = c.post("/v1/embed", json={"texts": ["a"]})
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.json()["error"]["code"] == "rate_limited"
        assert set(refused.json()["error"]) == {"code", "message"}
        assert "3/minute" in refused.json()["error"]["message"]
    with pytest.raises(openai.RateLimitError) as err:
        _openai(served, "read").embeddings.create(model="lee", input="a")
    assert err.value.response.headers["retry-after"]
    assert err.value.body["type"] == "rate_limit_error"  # type: ignore[index]
    # another role's key, without a limit of its own, is not held back
    with _http(served, "write") as c:
        assert all(c.get("/v1/models").status_code == 200 for _ in range(6))


def test_refused_requests_spend_nothing_and_the_sdk_waits_retry_after(
        served: dict[str, Any]) -> None:
    with _http(served, "admin") as c:
        assert [c.get("/v1/models").status_code for _ in range(2)] == [200, 200]
        refused = [c.get("/v1/models") for _ in range(5)]
        assert {r.status_code for r in refused} == {429}
        time.sleep(int(refused[-1].headers["retry-after"]) + 0.05)
        assert c.get("/v1/models").status_code == 200
        assert c.get("/v1/models").status_code == 200
    started = time.monotonic()
    got = _openai(served, "admin", retries=2).embeddings.create(model="lee", input="a")
    assert got.model == "lee@1" and time.monotonic() - started >= 0.5


@pytest.mark.parametrize("text", ["3 per", "0/second", "fast", ""])
def test_a_limit_that_is_not_a_rate_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match="rate_limit_write"):
        ServeSettings(rate_limit_write=text)
    assert ServeSettings(rate_limit_write="10/second;300/minute").rate_limit_write
