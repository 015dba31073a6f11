"""Page 8, models: every version with its lineage (parent links), manifest and evaluation
scores, and a comparison of two versions on texts of a collection (kNN overlap, Spearman of
similarities, Procrustes residual; golden recall of each with a set) by
``monitor.checks.compare_models``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from embedops.errors import EmbedopsError
from embedops.serve.auth import visible
from embedops.serve.console.forms import Form
from embedops.serve.console.render import page
from embedops.serve.console.session import Viewer
from embedops.serve.routes_monitor import monitor_db

router = APIRouter()
MAX_PROBE = 2000
DEFAULT_PROBE = 300


def lineage(models: list[Any]) -> list[dict[str, Any]]:
    """The versions as a forest: each node ``{"model", "children"}``; a version whose parent
    is not in the registry (or none) is a root."""
    refs = {mv.ref for mv in models}
    nodes = {mv.ref: {"model": mv, "children": []} for mv in models}
    roots = []
    for mv in models:
        parent = mv.parent
        if parent in refs and parent != mv.ref:
            nodes[parent]["children"].append(nodes[mv.ref])
        else:
            roots.append(nodes[mv.ref])
    return roots


def compare(request: Request, form: Form) -> dict[str, Any]:
    """Compare versions ``a`` and ``b`` on texts sampled from ``collection``."""
    from embedops.monitor.checks import compare_models
    from embedops.monitor.probe import sample_texts

    api = request.app.state.ctx.api
    a = form.text("a", required=True, label="version a", max_chars=200)
    b = form.text("b", required=True, label="version b", max_chars=200)
    collection = form.text("collection", required=True, label="collection", max_chars=64)
    n = form.integer("n", DEFAULT_PROBE, 2, MAX_PROBE, "probe texts") or DEFAULT_PROBE
    k = form.integer("k", 10, 1, 100) or 10
    golden_set = form.text("set", max_chars=64)
    texts = sample_texts(api, collection, n)
    golden = (monitor_db(request.app), golden_set, collection) if golden_set else None
    result = compare_models(api, a, b, texts, k, golden)
    return {"result": result.to_dict(), "collection": collection, "n": len(texts)}


def _page(request: Request, who: Viewer, form: Form) -> tuple[str, dict[str, Any]]:
    api = request.app.state.ctx.api
    models = api.models.list()
    context: dict[str, Any] = {
        "title": "Models", "models": models, "tree": lineage(models), "shown": None,
        "values": dict(form.values()), "error": None, "comparison": None,
        "collections": visible(who.principal, api.collections.list()),
        "sets": [s.name for s in monitor_db(request.app).list_sets()]}
    try:
        shown = form.text("show", max_chars=200)
        if shown:
            context["shown"] = api.models.show(shown)
        if form.raw("a") is not None:
            context["comparison"] = compare(request, form)
    except EmbedopsError as exc:
        context["error"] = exc
    return "models.html", context


@router.get("/models", include_in_schema=False)
def models(request: Request) -> Response:
    """Versions, lineage, one manifest (``show``), a comparison (``a`` and ``b``)."""
    form = Form.of_query(request)
    return page(request, lambda who: _page(request, who, form))


@router.get("/models/compare", include_in_schema=False)
def compare_fragment(request: Request) -> Response:
    """The comparison alone (what the compare form's htmx request swaps in)."""
    form = Form.of_query(request)

    def build(who: Viewer) -> tuple[str, dict[str, Any]]:
        try:
            return "compare.html", {"comparison": compare(request, form), "error": None}
        except EmbedopsError as exc:
            return "compare.html", {"comparison": None, "error": exc}
    return page(request, build)
