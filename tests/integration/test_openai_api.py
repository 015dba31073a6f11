"""The OpenAI-compatible routes on a real uvicorn, driven by the real ``openai`` SDK and by
LangChain's ``OpenAIEmbeddings``: vectors equal the engine's, every bad input raises the SDK's
own exception for its status, and schemathesis finds no server error on the new routes."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from serve_helpers import publish_lee_model, running_server

from embedops.config import Workspace
from embedops.engine import Embedops
from embedops.serve.app import create_app
from embedops.serve.keys import KeyStore
from embedops.serve.settings import ServeSettings

TEXTS = ["the government announced new measures", "fire crews fought the bushfires", "", "x"]


def _publish_matryoshka(ws: Workspace) -> str:
    """The Lee table again, published under a manifest that allows Matryoshka truncation."""
    from embedops.models.registry import Registry
    from embedops.models.static import StaticVectors, publish_static
    from embedops.text.tokenize import TokenizerSpec

    lee = Registry(ws).get("lee")
    mv = publish_static(Registry(ws), "mat", StaticVectors.read(lee), kind="word2vec",
                        spec=TokenizerSpec(), matryoshka=True)
    return mv.ref


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    ws = Workspace(tmp_path_factory.mktemp("openai") / "ws").ensure()
    publish_lee_model(ws)
    _publish_matryoshka(ws)
    key = KeyStore(ws).create("read")[0]
    settings = ServeSettings(home=str(ws.home), max_batch=8, max_text_chars=200)
    with running_server(create_app(settings)) as base, Embedops(ws) as api:
        yield {"base": base, "key": key, "api": api}


def _client(served: dict[str, Any], key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=served["base"] + "/v1", api_key=key or served["key"],
                         max_retries=0, timeout=30)


def _cosines(a: Any, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.where(norms > 0, (a * b).sum(axis=1) / np.where(norms > 0, norms, 1), 1.0)


def _rows(response: Any) -> np.ndarray:
    return np.asarray([d.embedding for d in response.data], dtype=np.float32)


def test_string_list_and_default_format_equal_the_engine(served: dict[str, Any]) -> None:
    expected = served["api"].embed(TEXTS, model="lee")
    client = _client(served)
    one = client.embeddings.create(model="lee", input=TEXTS[0], encoding_format="float")
    assert (one.object, one.model, len(one.data)) == ("list", "lee@1", 1)
    assert one.data[0].object == "embedding" and one.data[0].index == 0
    assert _cosines(_rows(one), expected[:1]).min() >= 0.9999
    # The SDK's default: it asks for base64 and decodes it to floats itself.
    many = client.embeddings.create(model="lee@1", input=TEXTS)
    assert [d.index for d in many.data] == [0, 1, 2, 3]
    assert _cosines(_rows(many), expected).min() >= 0.9999
    assert not _rows(many)[2].any()  # the empty text gets the zero vector


def test_base64_is_little_endian_float32(served: dict[str, Any]) -> None:
    expected = served["api"].embed(TEXTS, model="lee")
    got = _client(served).embeddings.create(model="lee", input=TEXTS, encoding_format="base64")
    rows = [np.frombuffer(base64.b64decode(d.embedding), dtype="<f4") for d in got.data]
    np.testing.assert_allclose(np.stack(rows), expected, atol=1e-6)


def test_usage_counts_the_models_own_tokens(served: dict[str, Any]) -> None:
    got = _client(served).embeddings.create(model="lee", input=TEXTS)
    counts = served["api"].models.count_tokens(TEXTS, "lee")
    assert counts.tokens == (5, 5, 0, 1)
    assert got.usage.prompt_tokens == got.usage.total_tokens == 11


def test_dimensions_cut_and_renormalize_matryoshka_models_only(served: dict[str, Any]) -> None:
    client = _client(served)
    full = served["api"].embed(TEXTS[:2], model="mat")
    cut = _rows(client.embeddings.create(model="mat", input=TEXTS[:2], dimensions=8))
    assert cut.shape == (2, 8)
    np.testing.assert_allclose(np.linalg.norm(cut, axis=1), 1.0, atol=1e-5)
    assert _cosines(cut, full[:, :8]).min() >= 0.9999
    same = _rows(client.embeddings.create(model="lee", input=TEXTS[:2], dimensions=32))
    assert same.shape == (2, 32)
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model="lee", input="a", dimensions=8)
    assert err.value.param == "dimensions" and "must be 32" in err.value.message
    with pytest.raises(openai.BadRequestError, match="1..32"):
        client.embeddings.create(model="mat", input="a", dimensions=33)


def test_langchain_openai_embeddings(served: dict[str, Any]) -> None:
    from langchain_openai import OpenAIEmbeddings

    emb = OpenAIEmbeddings(model="lee", base_url=served["base"] + "/v1",
                           api_key=served["key"], check_embedding_ctx_length=False,
                           chunk_size=8, max_retries=0)
    expected = served["api"].embed(TEXTS, model="lee")
    docs = emb.embed_documents(TEXTS * 3)  # two requests (chunk_size 8)
    assert _cosines(docs, np.concatenate([expected] * 3)).min() >= 0.9999
    assert _cosines([emb.embed_query(TEXTS[1])], expected[1:2]).min() >= 0.9999


def test_models_list_and_retrieve(served: dict[str, Any]) -> None:
    client = _client(served)
    listed = client.models.list()
    assert [m.id for m in listed.data] == ["lee@1", "mat@1"]
    assert all(m.object == "model" and m.owned_by == "embedops" and m.created > 0
               for m in listed.data)
    assert client.models.retrieve("lee@1").id == "lee@1"
    assert client.models.retrieve("mat").id == "mat@1"
    with pytest.raises(openai.NotFoundError) as err:
        client.models.retrieve("nosuch")
    assert err.value.code == "model_not_found" and err.value.param == "model"


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"model": "nosuch", "input": "a"}, openai.NotFoundError, "no model named 'nosuch'"),
        ({"model": "lee@9", "input": "a"}, openai.NotFoundError, "has no version 9"),
        ({"model": "lee", "input": []}, openai.BadRequestError, "empty list"),
        ({"model": "lee", "input": ["a", 1]}, openai.BadRequestError, "input[1]"),
        ({"model": "lee", "input": [[1, 2], []]}, openai.BadRequestError, "empty token-id"),
        ({"model": "lee", "input": [[1, 2]]}, openai.BadRequestError, "no token ids"),
        ({"model": "lee", "input": [5, 6]}, openai.BadRequestError, "no token ids"),
        ({"model": "lee", "input": "a", "dimensions": 0}, openai.BadRequestError, "dimensions"),
        ({"model": "lee", "input": "a", "encoding_format": "hex"}, openai.BadRequestError,
         "encoding_format"),
        ({"model": "lee", "input": "a", "extra_body": {"dimension": 8}},
         openai.BadRequestError, "dimension"),
        ({"model": "lee", "input": ["a"] * 9}, openai.APIStatusError, "limit is 8"),
        ({"model": "lee", "input": "a" * 201}, openai.APIStatusError, "limit is 200"),
    ],
)
def test_bad_input_raises_the_sdks_exception(served: dict[str, Any], kwargs: dict[str, Any],
                                             error: type[Exception], needle: str) -> None:
    with pytest.raises(error) as err:
        _client(served).embeddings.create(**kwargs)
    assert needle in str(err.value)
    if error is openai.APIStatusError:
        assert err.value.status_code == 413  # type: ignore[attr-defined]


def test_bad_key_is_an_authentication_error(served: dict[str, Any]) -> None:
    with pytest.raises(openai.AuthenticationError):
        _client(served, key="eok_nope").embeddings.create(model="lee", input="a")
    with pytest.raises(openai.AuthenticationError):
        _client(served, key="eok_nope").models.list()


def test_errors_use_openais_envelope_and_other_routes_keep_theirs(
        served: dict[str, Any]) -> None:
    with httpx.Client(base_url=served["base"],
                      headers={"Authorization": f"Bearer {served['key']}"}) as c:
        bad = c.post("/v1/embeddings", json={"model": "lee", "input": []})
        assert bad.status_code == 400
        assert set(bad.json()["error"]) == {"message", "type", "param", "code"}
        assert bad.json()["error"]["type"] == "invalid_request_error"
        assert bad.json()["error"]["param"] == "input"
        ok = c.post("/v1/embeddings", json={"model": "lee", "input": "a"})
        assert ok.headers["x-model-version"] == "lee@1"
        old = c.post("/v1/embed", json={"texts": []})
        assert old.status_code == 422 and set(old.json()["error"]) == {"code", "message"}
        assert c.get("/v1/models").json()["models"][0]["ref"] == "lee@1"  # embedops' shape
    anonymous = httpx.post(served["base"] + "/v1/embeddings", json={"model": "lee", "input": "a"})
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["type"] == "authentication_error"


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(served: dict[str, Any]) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.generation.modes import GenerationMode

    base = served["base"]
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    ops = [r.ok() for r in schema.get_all_operations()]
    ops = [op for op in ops if op.path.startswith(("/v1/embeddings", "/v1/models"))]
    assert len(ops) == 3
    headers = {"Authorization": f"Bearer {served['key']}"}
    for op in ops:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=op.as_strategy(generation_mode=mode))
            @settings(max_examples=15, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            def check(case: schemathesis.Case) -> None:
                response = case.call_and_validate(base_url=base, headers=headers,
                                                  checks=[not_a_server_error])
                if response.status_code >= 400:
                    assert set(response.json()["error"]) == {"message", "type", "param", "code"}

            try:
                check()
            except Exception as exc:  # no negative input exists for an operation without one
                if type(exc).__name__ != "Unsatisfiable":
                    raise


@pytest.fixture(scope="module")
def minilm_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from transformer_helpers import shared_minilm, workspace_of

    mv = shared_minilm(tmp_path_factory)
    home = workspace_of(mv)
    settings = ServeSettings(home=str(home), auth=False, max_batch=64)
    with running_server(create_app(settings)) as base, Embedops(home=home) as api:
        yield {"base": base, "key": "unused", "api": api, "ref": mv.ref}


@pytest.mark.transformer
def test_transformer_vectors_tokens_and_token_ids(minilm_served: dict[str, Any]) -> None:
    api, ref = minilm_served["api"], minilm_served["ref"]
    texts = ["A man is eating food.", "Une phrase en français.", "", "tiny"]
    client = _client(minilm_served)
    got = client.embeddings.create(model=ref, input=texts)
    assert _cosines(_rows(got), api.embed(texts, model=ref)).min() >= 0.9999
    # usage: wordpiece ids with [CLS] and [SEP], 0 for the empty text (not run)
    counts = api.models.count_tokens(texts, ref)
    assert counts.tokens[2] == 0 and counts.tokens[3] >= 3
    assert got.usage.prompt_tokens == counts.total
    # token ids are decoded with MiniLM's own tokenizer: the same vector as the text
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(api.models.resolve(ref).path / "model" / "tokenizer.json"))
    ids = tokenizer.encode(texts[0]).ids
    by_ids = client.embeddings.create(model=ref, input=[ids, ids[1:-1]])
    by_one = client.embeddings.create(model=ref, input=ids)
    expected = api.embed([texts[0].lower()] * 2, model=ref)
    assert _cosines(_rows(by_ids), expected).min() >= 0.9999
    assert _cosines(_rows(by_one), expected[:1]).min() >= 0.9999
    with pytest.raises(openai.BadRequestError, match="outside the vocabulary"):
        client.embeddings.create(model=ref, input=[[101, 10**9]])
    with pytest.raises(openai.BadRequestError, match="not Matryoshka-trained"):
        client.embeddings.create(model=ref, input="a", dimensions=128)


def test_the_envelope_types_follow_the_status() -> None:
    import json

    from embedops.serve.errors import is_openai, openai_envelope

    kinds = {status: json.loads(openai_envelope(status, "c", "m").body)["error"]["type"]
             for status in (400, 401, 403, 404, 413, 422, 429, 500)}
    assert kinds == {400: "invalid_request_error", 401: "authentication_error",
                     403: "permission_error", 404: "invalid_request_error",
                     413: "invalid_request_error", 422: "invalid_request_error",
                     429: "rate_limit_error", 500: "server_error"}
    assert openai_envelope(422, "c", "m").status_code == 400
    assert is_openai("/v1/models/lee@1") and not is_openai("/v1/modelsx")


def test_user_is_logged_as_a_hash_only(served: dict[str, Any],
                                       caplog: pytest.LogCaptureFixture) -> None:
    import hashlib
    import logging

    with caplog.at_level(logging.INFO, logger="embedops.serve"):
        _client(served).embeddings.create(model="lee", input="a", user="ann@example.com")
    fields = [getattr(r, "fields", {}) for r in caplog.records]
    digest = hashlib.sha256(b"ann@example.com").hexdigest()[:16]
    assert any(f.get("user_sha256") == digest for f in fields)
    assert "ann@example.com" not in caplog.text + str(fields)
