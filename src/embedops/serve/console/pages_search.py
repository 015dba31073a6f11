"""Page 2, the search playground: one query in every mode side by side, with the latency of
each, and why each hit ranks where it does (dense and BM25 rank and score, the fused rank,
from ``Embedops.explain_hybrid``); filters and per-call ``ef_search``/``nprobe``; a write
key can add a hit to a golden set."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from embedops.engine.options import DEFAULT_HYBRID_WEIGHT, MODES, parse_cli_filters
from embedops.errors import AlreadyExists, EmbedopsError, NotFound, Unauthorized
from embedops.serve.auth import check_collection, visible
from embedops.serve.console.forms import Form
from embedops.serve.console.render import error_page, html, is_fragment, page
from embedops.serve.console.session import CSRF_FIELD, Viewer, check_csrf, require, viewer
from embedops.serve.keys import Role
from embedops.serve.routes_monitor import monitor_db

router = APIRouter()
TEXT_CHARS = 240


def read_filters(text: str) -> dict[str, Any]:
    """Filters typed as ``field=value`` expressions, one per line or separated by ``;``."""
    exprs = [e.strip() for line in text.splitlines() for e in line.split(";") if e.strip()]
    return parse_cli_filters(exprs) if exprs else {}


def read_request(request: Request, form: Form) -> dict[str, Any]:
    """The checked search request of the form (InvalidInput/LimitExceeded/NotFound if not)."""
    ctx = request.app.state.ctx
    settings = ctx.settings
    collection = form.text("collection", required=True, label="collection", max_chars=64)
    info = ctx.api.collection_info(collection)
    query = form.text("q", required=True, label="query", max_chars=settings.max_text_chars)
    params = {}
    for knob in ("ef_search", "nprobe"):
        value = form.integer(knob, None, 1, 100_000)
        if value is not None:
            params[knob] = value
    version = form.text("version", max_chars=200) or None
    if version and version not in (info.model_version, info.candidate_version):
        raise NotFound(f"collection '{collection}' is not served by {version}",
                       f"pick {info.model_version}"
                       + (f" or {info.candidate_version}" if info.candidate_version else ""))
    return {"collection": collection, "info": info, "query": query,
            "k": form.integer("k", 10, 1, settings.max_k),
            "weight": form.number("weight", DEFAULT_HYBRID_WEIGHT, 0.0, 1.0, "hybrid weight"),
            "filters": read_filters(form.text("filters", max_chars=2000)),
            "params": params or None, "version": version}


def run_mode(api: Any, req: dict[str, Any], mode: str) -> dict[str, Any]:
    """One mode's hits and latency, or its error."""
    started = time.perf_counter()
    try:
        response = api.search(req["collection"], req["query"], k=req["k"], mode=mode,
                              filters=req["filters"], model_version=req["version"],
                              hybrid_weight=req["weight"],
                              search_params=None if mode == "lexical" else req["params"])
    except EmbedopsError as exc:
        return {"mode": mode, "error": exc, "hits": [], "ms": None}
    wall = (time.perf_counter() - started) * 1000
    return {"mode": mode, "error": None, "hits": response.hits, "ms": response.took_ms,
            "wall_ms": round(wall, 2), "model_version": response.model_version}


def run_all(request: Request, req: dict[str, Any]) -> dict[str, Any]:
    """Every mode, and the hybrid explanation keyed by item id."""
    api = request.app.state.ctx.api
    columns = [run_mode(api, req, mode) for mode in MODES]
    try:
        explain = api.explain_hybrid(req["collection"], req["query"], req["k"], req["filters"],
                                     req["version"], req["weight"], req["params"])
    except EmbedopsError:
        explain = {}
    two_stage = api.two_stage_config(req["collection"])
    return {"columns": columns, "explain": explain, "two_stage": two_stage}


def _context(request: Request, who: Viewer, form: Form) -> dict[str, Any]:
    ctx = request.app.state.ctx
    collections = visible(who.principal, ctx.api.collections.list())
    values = dict(form.values())
    values.setdefault("collection", collections[0].name if collections else "")
    context: dict[str, Any] = {
        "title": "Search", "collections": collections, "values": values, "modes": MODES,
        "results": None, "error": None, "text_chars": TEXT_CHARS,
        "max_k": ctx.settings.max_k, "default_weight": DEFAULT_HYBRID_WEIGHT,
        "golden_sets": [], "plots": False}
    if form.raw("q") is None:
        return context
    try:
        req = read_request(request, form)
    except EmbedopsError as exc:
        context["error"] = exc
        return context
    context.update(req=req, results=run_all(request, req))
    if who.can_write:
        context["golden_sets"] = [s.name for s in monitor_db(request.app).list_sets()]
    return context


@router.get("/search", include_in_schema=False)
def search_page(request: Request) -> Response:
    """The playground; with ``q`` set, the results of every mode under the form."""
    form = Form.of_query(request)
    return page(request, lambda who: ("search.html", _context(request, who, form)))


@router.get("/search/results", include_in_schema=False)
def search_results(request: Request) -> Response:
    """The results part alone (what the form's htmx request swaps in)."""
    form = Form.of_query(request)
    return page(request, lambda who: ("search_results.html", _context(request, who, form)))


@router.post("/golden/add", include_in_schema=False)
async def add_to_golden(request: Request) -> Response:
    """Add a hit of a query to a golden set as a relevant id (write role); the set is
    created, bound to the collection, when it does not exist."""
    who: Viewer | None = None
    try:
        form = await Form.of_body(request)
        who = viewer(request)
        if who is None:
            raise Unauthorized("sign in first", "open /ui/login")
        check_csrf(request, who.session.csrf, form.raw(CSRF_FIELD))
        require(who, Role.write)
        added = _add(request, form, who)
    except Exception as exc:  # noqa: BLE001 - shown on the page, never a traceback
        return error_page(request, exc, who)
    template = "golden_added.html" if is_fragment(request) else "notice.html"
    return html(request, template, {"title": "Golden set", **added}, who=who)


def _add(request: Request, form: Form, who: Viewer) -> dict[str, Any]:
    from embedops.monitor.golden import make_query

    db = monitor_db(request.app)
    collection = form.text("collection", required=True, max_chars=64)
    check_collection(request, who.principal, collection)
    request.app.state.ctx.api.collection_info(collection)
    name = form.text("new_set", max_chars=64) or form.text("set", required=True,
                                                           label="golden set", max_chars=64)
    query = make_query(form.text("q", required=True, label="query"),
                       [form.text("id", required=True, label="item id", max_chars=512)])
    try:
        db.create_set(name, collection, "added from the console")
    except AlreadyExists:
        pass
    count = db.add_queries(name, [query])
    item = next(iter(query.relevant))
    return {"message": f"added {item} as relevant for this query to golden set '{name}' "
                       f"({count} queries)", "set": name, "collection": collection}
