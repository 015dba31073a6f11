"""``POST /v1/embed``: a batch of texts to vectors, through the query-embedding cache."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Request

from embedops.serve.auth import READ
from embedops.serve.encoders import caching
from embedops.serve.keys import Principal
from embedops.serve.limits import check_batch, check_texts
from embedops.serve.openapi import AUTH, BODY, errors
from embedops.serve.ratelimit import charge_tokens
from embedops.serve.respond import named_json
from embedops.serve.schemas import EmbedRequest
from embedops.serve.textinfo import text_info

router = APIRouter(prefix="/v1", tags=["embed"], responses=errors(*AUTH, *BODY, 404, 409, 503))


@router.post("/embed", summary="Embed a batch of texts")
def embed(request: Request, body: EmbedRequest, who: Principal = READ) -> Any:
    """Vectors of ``texts`` (rows in order) with per-text token, OOV and truncation details."""
    ctx = request.app.state.ctx
    check_batch(ctx.settings, len(body.texts))
    check_texts(ctx.settings, body.texts)
    api = ctx.api
    version = api.models.resolve(body.model or api.default_model()).ref
    charge_tokens(request, who, lambda: api.models.count_tokens(body.texts, version).total)
    with caching() as use:
        vectors = np.asarray(api.embed(body.texts, model=version), dtype=np.float32)
    info = text_info(api.models.encoder(version), body.texts)
    for rate in info.get("oov_rate") or []:
        ctx.metrics.oov_rate.labels(version).observe(rate)
    ctx.metrics.observe_vectors(version, vectors)
    return named_json(version, {
        "dim": int(vectors.shape[1]),
        "vectors": vectors.tolist(),
        "cache_hits": use.hits,
        **info,
    })
