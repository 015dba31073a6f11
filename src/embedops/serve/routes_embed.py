"""``POST /v1/embed``: a batch of texts to vectors, through the query-embedding cache."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response

from embedops.serve.auth import READ
from embedops.serve.limits import check_batch, check_texts
from embedops.serve.respond import named
from embedops.serve.schemas import EmbedRequest

router = APIRouter(prefix="/v1", tags=["embed"])


def cached_embed(ctx: Any, texts: list[str], model: str | None) -> tuple[str, np.ndarray, int]:
    """(model version, vectors, cache hits): cached vectors reused, the rest embedded by the API."""
    version = ctx.registry.get(model or _default_model(ctx)).ref
    timer = ctx.metrics.embed_seconds.labels(version)

    def compute(missing: list[str]) -> np.ndarray:
        started = time.perf_counter()
        vectors = np.asarray(ctx.api.embed(missing, model=version), dtype=np.float32)
        timer.observe(time.perf_counter() - started)
        return vectors

    vectors, hits = ctx.cache.get_many(version, texts, compute)
    ctx.metrics.cache_lookups.labels("hit").inc(hits)
    ctx.metrics.cache_lookups.labels("miss").inc(len(texts) - hits)
    return version, vectors, hits


def _default_model(ctx: Any) -> str:
    from embedops.errors import ModelNotFound

    names = ctx.registry.names()
    if len(names) != 1:
        raise ModelNotFound(
            f"no model named and the workspace has {len(names)} models ({', '.join(names)})",
            "pass \"model\": \"name@N\"",
        )
    return names[0]


@router.post("/embed", summary="Embed a batch of texts")
def embed(request: Request, response: Response, body: EmbedRequest, _: Any = READ) -> Any:
    """Vectors of ``texts`` (rows in order), with per-text truncation and OOV information."""
    ctx = request.app.state.ctx
    check_batch(ctx.settings, len(body.texts))
    check_texts(ctx.settings, body.texts)
    version, vectors, hits = cached_embed(ctx, body.texts, body.model)
    info = ctx.api.text_info(body.texts, model=version)
    for rate in info.get("oov_rate") or []:
        ctx.metrics.oov_rate.labels(version).observe(rate)
    ctx.metrics.observe_vectors(version, vectors)
    return named(response, version, {
        "dim": int(vectors.shape[1]),
        "vectors": vectors.tolist(),
        "cache_hits": hits,
        **info,
    })
