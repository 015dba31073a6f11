"""``POST /v1/collections/{name}/search``: dense, lexical, hybrid or two-stage search."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request

from embedops.lifecycle.service import route_search
from embedops.serve.auth import READ
from embedops.serve.encoders import caching
from embedops.serve.limits import check_k, check_texts
from embedops.serve.respond import named_json
from embedops.serve.schemas import SearchRequest

_SUMMARY = "Search a collection"


def _search(request: Request, name: str, body: SearchRequest) -> Any:
    """The ``k`` best items for ``query``, best first, each with its score and metadata."""
    ctx = request.app.state.ctx
    check_k(ctx.settings, body.k)
    if body.query is not None:
        check_texts(ctx.settings, [body.query], "query")
    started = time.perf_counter()
    with caching() as use:
        result = route_search(request, name, body.model_version, lambda version: ctx.api.search(
            name, body.query, k=body.k, mode=body.mode, filters=body.filters,
            model_version=version, hybrid_weight=body.hybrid_weight, vector=body.vector,
        ))
    ctx.metrics.search_seconds.labels(body.mode, _backend(ctx, name, result)).observe(
        time.perf_counter() - started
    )
    out = result.to_dict()
    out["cache_hit"] = use.hits > 0
    return named_json(out.pop("model_version"), out)


def make_router(inline: bool) -> APIRouter:
    """The search route, answered in the thread pool, or with ``inline`` on the event loop.

    Inline saves two thread hand-offs per request, which on a busy machine cost a scheduler
    time slice each; but while one search runs no other request is served, so it suits
    warmed-up collections (warm-up builds every index and BM25 view first).
    """
    router = APIRouter(prefix="/v1/collections", tags=["search"])
    if inline:

        @router.post("/{name}/search", summary=_SUMMARY)
        async def search_inline(
            request: Request, name: str, body: SearchRequest, _: Any = READ
        ) -> Any:
            """The ``k`` best items for ``query``, best first, with scores and metadata."""
            return _search(request, name, body)

    else:

        @router.post("/{name}/search", summary=_SUMMARY)
        def search(request: Request, name: str, body: SearchRequest, _: Any = READ) -> Any:
            """The ``k`` best items for ``query``, best first, with scores and metadata."""
            return _search(request, name, body)

    return router


def _backend(ctx: Any, name: str, result: Any) -> str:
    """The index kind that served a dense search ("bm25" for lexical), looked up once."""
    if result.mode == "lexical" or result.model_version is None:
        return "bm25"
    key = (name, result.model_version)
    if key not in ctx.backends:
        status = ctx.api.index_status(name, result.model_version)
        ctx.backends[key] = str((status.get("snapshot") or {}).get("kind") or "unknown")
    return ctx.backends[key]
