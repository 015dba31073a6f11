"""OpenAI-compatible routes: ``POST /v1/embeddings``, ``GET /v1/models``, ``GET /v1/models/{id}``.

OpenAI's request and response shapes, so that the ``openai`` SDK, LangChain's
``OpenAIEmbeddings``, LlamaIndex and other clients work unchanged against ``embedops serve``
(``base_url=http://host:port/v1``, ``api_key=<embedops key>``). Errors leave in OpenAI's envelope
(see ``serve.errors``). Each route only translates HTTP to calls of the engine and back: the
embedding is ``Embedops.embed`` (one call per request, length-bucketed by the encoder) through
the same query cache, metrics and ``X-Model-Version`` header as ``/v1/embed``; concurrent
requests for one model share encodes (``serve.coalesce``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response

from embedops.engine.options import ModelVersion
from embedops.errors import EmbedopsError
from embedops.serve.auth import READ
from embedops.serve.coalesce import Coalescer, coalescer_for
from embedops.serve.encoders import caching
from embedops.serve.keys import Principal
from embedops.serve.limits import check_batch, check_texts
from embedops.serve.logging import LOGGER
from embedops.serve.middleware import MODEL_HEADER
from embedops.serve.ratelimit import charge_tokens
from embedops.serve.respond import FastJSONResponse
from embedops.serve.schemas_openai import (
    EmbeddingsRequest,
    EmbeddingsResponse,
    ErrorResponse,
    ModelCard,
    ModelList,
)

log = logging.getLogger(LOGGER)
router = APIRouter(prefix="/v1", tags=["openai"])

_SUMMARY = ("name", "version", "kind", "dim", "vocab_size", "parent", "created_at", "eval")
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text} for status, text in (
        (400, "Bad input (OpenAI answers validation errors with 400)"),
        (401, "No API key, or an unknown or revoked one"),
        (403, "The key's role may not call this route"),
        (404, "No such model"),
        (413, "Over a request limit (inputs per request, characters per input, body size)"),
        (429, "The key is over its rate limit; see the Retry-After header"),
    )
}

_EMBEDDINGS_DOC = """OpenAI's embeddings request and answer. `model` is an embedops model
(`name`, `name@N`, `name@latest`); the answer's `model` and the `X-Model-Version` header name the
exact version. The model named is the model that answers: rollouts are per collection (see
`/v1/collections/{name}/search`), so a canary never answers here.

`usage.prompt_tokens` counts tokens with the model's own tokenizer: for transformer models the
wordpiece ids the model runs on, `[CLS]` and `[SEP]` included, after truncation to its
`max_seq_length`; for static models the words its tokenizer splits out. Token-id inputs are
decoded with the model's tokenizer first (transformer models only). Every input of a request is
encoded in one call, batched by length, together with those of concurrent requests for the same
model. At most `--max-batch` inputs of `--max-text-chars`
characters each (413 above)."""


@contextlib.contextmanager
def _about(param: str) -> Iterator[None]:
    """Name the request field an EmbedopsError raised in the block is about (``error.param``)."""
    try:
        yield
    except EmbedopsError as exc:
        setattr(exc, "param", param)  # noqa: B010 (an attribute EmbedopsError does not declare)
        raise


def _texts(api: Any, body: EmbeddingsRequest, version: str) -> list[str]:
    """The inputs as texts: token ids decoded with the model's tokenizer."""
    value = body.input
    if isinstance(value, str):
        return [value]
    if isinstance(value[0], str):
        return [str(text) for text in value]
    ids = [value] if isinstance(value[0], int) else value
    with _about("input"):
        return list(api.models.decode_tokens(ids, version))


def _coalescer(request: Request) -> Coalescer:
    """The app's Coalescer: concurrent requests for one model share encodes."""
    ctx = request.app.state.ctx

    def encode(texts: list[str], model: str) -> np.ndarray:
        return np.asarray(ctx.api.embed(texts, model=model), dtype=np.float32)

    return coalescer_for(request.app, encode)


def _data(vectors: np.ndarray, encoding_format: str) -> list[dict[str, Any]]:
    """OpenAI's ``data`` list: each row as numbers (serialized by orjson straight from numpy)
    or as its little-endian float32 bytes in base64."""
    rows = np.ascontiguousarray(vectors, dtype="<f4")
    if encoding_format == "base64":
        return [{"object": "embedding", "index": i,
                 "embedding": base64.b64encode(row.tobytes()).decode("ascii")}
                for i, row in enumerate(rows)]
    return [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)]


def _observe(ctx: Any, version: str, vectors: np.ndarray, oov: Any, tokens: Any) -> None:
    """The metrics ``/v1/embed`` records: vector norms, and OOV rates for static models."""
    if oov is not None:
        summary = ctx.metrics.oov_rate.labels(version)
        for n_oov, n_tokens in zip(oov, tokens, strict=True):
            summary.observe(n_oov / n_tokens if n_tokens else 0.0)
    ctx.metrics.observe_vectors(version, vectors)


def _log_user(request: Request, user: str | None) -> None:
    """Log the end user of a request as a hash only (``user`` may be an e-mail address)."""
    if user is not None and log.isEnabledFor(logging.INFO):
        digest = hashlib.sha256(user.encode()).hexdigest()[:16]
        fields = {"request_id": request.scope.get("embedops.request_id"), "user_sha256": digest}
        log.info("embeddings user", extra={"fields": fields})


@router.post(
    "/embeddings", summary="Create embeddings (OpenAI-compatible)", description=_EMBEDDINGS_DOC,
    response_model=None, responses={200: {"model": EmbeddingsResponse}, **_ERRORS},
)
def create_embeddings(request: Request, body: EmbeddingsRequest, who: Principal = READ
                      ) -> Response:
    """Vectors of ``body.input`` under ``body.model``, in OpenAI's shape."""
    ctx = request.app.state.ctx
    api = ctx.api
    with _about("model"):
        version = api.models.resolve(body.model).ref
    if body.dimensions is not None:
        with _about("dimensions"):
            api.models.check_dimensions(version, body.dimensions)
    n_inputs = 1 if isinstance(body.input, str) or isinstance(body.input[0], int) else len(
        body.input)
    with _about("input"):
        check_batch(ctx.settings, n_inputs, "inputs")
        texts = _texts(api, body, version)
        check_texts(ctx.settings, texts, "input")
    charge_tokens(request, who, lambda: api.models.count_tokens(texts, version).total)
    with caching():
        vectors = _coalescer(request).embed(texts, version)
    counts = api.models.count_tokens(texts, version)
    _observe(ctx, version, vectors, counts.oov, counts.tokens)
    if body.dimensions is not None:
        vectors = api.models.truncate(vectors, version, body.dimensions)
    _log_user(request, body.user)
    payload = {
        "object": "list",
        "data": _data(vectors, body.encoding_format),
        "model": version,
        "usage": {"prompt_tokens": counts.total, "total_tokens": counts.total},
    }
    return FastJSONResponse(payload, headers={MODEL_HEADER: version})


def _created(mv: ModelVersion) -> int:
    """When ``mv`` was published, in Unix seconds (0 when its manifest does not say)."""
    stamp = mv.manifest.get("created_at")
    try:
        return int(datetime.fromisoformat(str(stamp)).timestamp())
    except ValueError:
        return 0


def _card(mv: ModelVersion) -> dict[str, Any]:
    """OpenAI's ``Model`` object of a version, with its kind and dim."""
    return {"id": mv.ref, "object": "model", "created": _created(mv), "owned_by": "embedops",
            "kind": mv.kind, "dim": mv.dim}


@router.get(
    "/models", summary="List model versions (OpenAI-compatible)", response_model=ModelList,
    responses={k: v for k, v in _ERRORS.items() if k in (400, 401, 403, 429)},
)
def list_models(request: Request, name: str | None = None, _: Any = READ) -> Any:
    """Every model version (of ``name`` if given), oldest first: OpenAI's list of ``Model``
    objects in ``data`` (``id`` is the version's ``name@N``, usable as ``model`` in
    ``/v1/embeddings``), and embedops' summary of each (``ref``, kind, dim, eval) in
    ``models``."""
    rows = request.app.state.ctx.api.models.list(name)
    return FastJSONResponse({
        "object": "list",
        "data": [_card(mv) for mv in rows],
        "models": [{"ref": mv.ref, **{k: mv.manifest.get(k) for k in _SUMMARY}} for mv in rows],
    })


@router.get(
    "/models/{model}", summary="Show one model version (OpenAI-compatible)",
    response_model=ModelCard, responses={k: v for k, v in _ERRORS.items() if k != 413},
)
def show_model(request: Request, model: str, _: Any = READ) -> Any:
    """OpenAI's ``Model`` object of ``name``, ``name@N`` or ``name@latest``, with the version's
    full manifest (``model_version``, ``manifest``)."""
    with _about("model"):
        mv = request.app.state.ctx.api.models.resolve(model)
    body = {**_card(mv), "model_version": mv.ref, "manifest": mv.manifest}
    return FastJSONResponse(body, headers={MODEL_HEADER: mv.ref})
