"""``POST /v1/collections/{name}/search``: dense, lexical, hybrid or two-stage search.

The service's hot path, so it is answered by ``SearchRoute`` (see there), without FastAPI's
per-request dependency solving; what it checks and answers is the same as for any other route.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from embedops.serve.auth import READ, authorize
from embedops.serve.encoders import caching
from embedops.serve.keys import Role
from embedops.serve.limits import check_k, check_texts
from embedops.serve.openapi import AUTH, BODY, errors
from embedops.serve.respond import named_json
from embedops.serve.rollouts import route_search
from embedops.serve.schemas import SearchRequest, parse_body


class SearchRoute(APIRoute):
    """An APIRoute whose requests skip FastAPI's signature solving (same checks, same answers).

    FastAPI builds the OpenAPI operation from the endpoint's signature (path parameter, the
    ``SearchRequest`` body, the two API-key schemes), and per request it *solves* that
    signature: both security dependencies and the role check through its dependency machinery,
    ``json.loads`` of the body, a field-by-field validation of the dict, the path parameter.
    Profiled, dependency solving alone was a fifth of a search request's CPU (the facade's
    search about half), and the whole route machinery cost 180-220 us per request against
    55-75 us for this one (measured with a trivial endpoint). ``get_route_handler`` is
    FastAPI's documented hook for a route's per-request handler. Here it returns ``_handle``,
    which does the same work with plain calls, while the signature still gives the schema:

    - ``authorize``: the same headers, 401/403 and ``request.state.key_id`` (for the log line);
    - the body is read through the same size limit (413), then
      ``SearchRequest.model_validate_json`` parses and validates the bytes in one pass in
      pydantic-core: the same model, so the same rules (extra fields forbidden, ranges, modes);
      its errors are raised as FastAPI's ``RequestValidationError``, so the same 422 envelope;
    - the same limits (k, text length), rollout routing, query cache and metrics; the search
      runs in the thread pool (or inline with ``inline_search``), the answer is orjson.

    Routing, the middleware (request id, latency under this route's path, errors, log line) and
    the exception handlers are FastAPI's as before. A raw Starlette route placed first saved
    10-25 us more per request, but needed a second, schema-only route for /openapi.json.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return _handle


async def _handle(request: Request) -> Response:
    """Answer one search request (see ``SearchRoute``)."""
    ctx = request.app.state.ctx
    authorize(request, Role.read)
    body = parse_body(SearchRequest, await request.body(), request.headers.get("content-type"))
    _check_limits(request, body)
    name = request.path_params["name"]
    if ctx.settings.inline_search or (ctx.settings.inline_cheap_search and cheap(ctx, name, body)):
        # On the event loop: no thread hand-offs, but one search at a time.
        return _search(request, name, body)
    return await run_in_threadpool(_search, request, name, body)


# k up to which a dense kNN counts as cheap (hydrating 100 hits from the catalog takes ~1 ms)
CHEAP_MAX_K = 100


def cheap(ctx: Any, name: str, body: SearchRequest) -> bool:
    """Whether this search is cheap and bounded enough to answer on the event loop.

    Handing a request to the thread pool and back costs two thread switches; measured with
    ``bench/serve.py`` (2 workers, 8 clients, 2 cores), answering every search inline cut
    server CPU per request from 1.0x to 0.75-0.85x Chroma's server's. But a search that encodes
    text with a transformer (5-20 ms), scans a filter, fuses BM25 or loads an index would then
    stall every other request of the worker. So only a plain dense kNN whose query vector is
    at hand (sent, or in the query cache) against an index already in memory, with no rollout
    in progress and no pinned version, stays on the loop: about half a millisecond of work.
    """
    if body.mode != "dense" or body.filters or body.k > CHEAP_MAX_K or body.model_version:
        return False
    try:
        info = ctx.api.collection_info(name)
    except Exception:  # unknown collection and the like: the thread pool path answers it
        return False
    version = str(info.model_version)
    if info.candidate_version or not ctx.api.index_loaded(name, version):
        return False
    return body.vector is not None or ctx.cache.contains(version, str(body.query))


def _check_limits(request: Request, body: SearchRequest) -> None:
    settings = request.app.state.ctx.settings
    check_k(settings, body.k)
    if body.query is not None:
        check_texts(settings, [body.query], "query")


def _search(request: Request, name: str, body: SearchRequest) -> Response:
    """The ``k`` best items for ``query``, best first, each with its score and metadata."""
    ctx = request.app.state.ctx
    started = time.perf_counter()
    with caching() as use:
        result = route_search(request, name, body.model_version, lambda version: ctx.api.search(
            name, body.query, k=body.k, mode=body.mode, filters=body.filters,
            model_version=version, hybrid_weight=body.hybrid_weight, vector=body.vector,
            search_params=body.search_params,
        ))
    ctx.metrics.search_timer(body.mode, _backend(ctx, name, result)).observe(
        time.perf_counter() - started
    )
    out = result.to_dict()
    out["cache_hit"] = use.hits > 0
    return named_json(out.pop("model_version"), out)


router = APIRouter(
    prefix="/v1/collections", tags=["search"], route_class=SearchRoute,
    responses=errors(*AUTH, *BODY, 404, 409, 503),
)


@router.post("/{name}/search", summary="Search a collection")
def search(request: Request, name: str, body: SearchRequest, _: Any = READ) -> Any:
    """The ``k`` best items for ``query``, best first, with scores and metadata."""
    # The signature is what /openapi.json shows; requests are answered by ``_handle``.
    _check_limits(request, body)
    return _search(request, name, body)


def _backend(ctx: Any, name: str, result: Any) -> str:
    """The index kind that served a dense search ("bm25" for lexical), looked up once."""
    if result.mode == "lexical" or result.model_version is None:
        return "bm25"
    key = (name, result.model_version)
    if key not in ctx.backends:
        status = ctx.api.index_status(name, result.model_version)
        ctx.backends[key] = str((status.get("snapshot") or {}).get("kind") or "unknown")
    return str(ctx.backends[key])
