"""``POST /v1/collections/{name}/search``: dense, lexical, hybrid or two-stage search."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request, Response

from embedops.errors import InvalidInput
from embedops.serve.auth import READ
from embedops.serve.limits import check_k, check_texts
from embedops.serve.respond import named
from embedops.serve.schemas import SearchRequest

router = APIRouter(prefix="/v1/collections", tags=["search"])


@router.post("/{name}/search", summary="Search a collection")
def search(
    request: Request, response: Response, name: str, body: SearchRequest, _: Any = READ
) -> Any:
    """The ``k`` best items for a query text (or, in dense mode, a query vector)."""
    ctx = request.app.state.ctx
    check_k(ctx.settings, body.k)
    if (body.query is None) == (body.vector is None):
        raise InvalidInput("give exactly one of 'query' (text) and 'vector'")
    if body.query is not None:
        check_texts(ctx.settings, [body.query], "query")
    started = time.perf_counter()
    result = ctx.api.search(
        name, body.query, k=body.k, mode=body.mode, filters=body.filters,
        model_version=body.model_version, hybrid_weight=body.hybrid_weight,
        vector=body.vector,
    )
    ctx.metrics.search_seconds.labels(body.mode, "embedops").observe(
        time.perf_counter() - started
    )
    out = result.to_dict()
    return named(response, out.pop("model_version"), out)
