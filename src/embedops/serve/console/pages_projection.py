"""Page 4, projection: where a collection's vectors sit, on a sampled 2-D map coloured by a
metadata field, with the items of a recent time window drawn over the sample (drift)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from embedops.errors import EmbedopsError, NotFound
from embedops.monitor.probe import TIME_FIELDS, parse_time, window_ids
from embedops.serve.auth import visible
from embedops.serve.console import charts, projection
from embedops.serve.console.forms import Form
from embedops.serve.console.render import page
from embedops.serve.console.session import Viewer

router = APIRouter()


def version_of(info: Any, asked: str | None) -> str:
    """The active version, or the candidate when asked for; NotFound for any other."""
    if not asked or asked == info.model_version:
        return str(info.model_version)
    if asked == info.candidate_version:
        return str(asked)
    raise NotFound(f"collection '{info.name}' is not served by {asked}",
                   f"pick {info.model_version}"
                   + (f" or {info.candidate_version}" if info.candidate_version else ""))


def build_map(api: Any, req: dict[str, Any]) -> dict[str, Any]:
    """Sample, project and colour ``req['collection']``; overlay its window if asked."""
    collection, version = req["collection"], req["version"]
    chosen = projection.sample(api.item_ids(collection), req["n"])
    found, vectors = api.load_vectors(collection, version, chosen)
    if len(found) < 2:
        raise NotFound(f"collection '{collection}' has {len(found)} item(s) with {version} "
                       "vectors; a map needs at least 2", "ingest items first")
    items = {it.id: it for it in api.get_items(collection, found)}
    keep = [n for n, i in enumerate(found) if i in items]  # deleted meanwhile: left out
    found, vectors = [found[n] for n in keep], vectors[keep]
    coords, fitted = projection.project(vectors, req["method"])
    metadata = [items[i].metadata for i in found]
    field = req["color"] if req["color"] in projection.fields(metadata) else None
    traces = projection.traces(coords, found, [items[i].text for i in found], metadata, field)
    window = overlay(api, req, fitted) if req["window"] else None
    if window is not None:
        traces.append(window)
    title = f"{collection} · {version} · {len(found)} of {api.count(collection)} items"
    return {"figure": charts.scatter(title, traces), "fields": projection.fields(metadata),
            "n_points": len(found), "explained": fitted.explained,
            "window_points": len(window["x"]) if window else 0}


def overlay(api: Any, req: dict[str, Any], fitted: projection.Projector) -> dict[str, Any]:
    """The items written since ``req['window']`` on the map's axes (a drift window)."""
    since = parse_time(req["window"])
    if req["time_field"] == "updated_at" and since is not None:
        # The catalog's own index of writes: no scan of every item.
        written = [i for i, _, deleted in api.changes_since(req["collection"], since)
                   if not deleted]
    else:
        written = window_ids(api, req["collection"], since, None, req["time_field"])
    ids = projection.sample(written, req["n"], seed=1)
    if not ids:
        raise NotFound(f"no items of '{req['collection']}' have {req['time_field']} in the "
                       f"window since {req['window']}", "widen the window, e.g. 7d")
    found, vectors = api.load_vectors(req["collection"], req["version"], ids)
    coords = fitted.apply(vectors)
    texts = {it.id: it.text for it in api.get_items(req["collection"], found)}
    return {"name": f"window since {req['window']}", "symbol": "x", "size": 7,
            "x": [round(float(v), 4) for v in coords[:, 0]],
            "y": [round(float(v), 4) for v in coords[:, 1]],
            "text": [f"{charts.label(i, 40)}<br>{charts.label(texts.get(i, ''), 120)}"
                     for i in found]}


def read_request(api: Any, form: Form, collections: list[Any]) -> dict[str, Any]:
    """The checked map request of the form."""
    default = collections[0].name if collections else ""
    name = form.text("collection", default, max_chars=64)
    if not name:
        raise NotFound("there are no collections yet", "create one and ingest items first")
    info = api.collection_info(name)
    return {"collection": name, "version": version_of(info, form.text("version") or None),
            "n": form.integer("n", projection.DEFAULT_POINTS, 2, projection.MAX_POINTS,
                              "points"),
            "method": form.choice("method", projection.METHODS, "pca", "method"),
            "color": form.text("color", max_chars=100),
            "window": form.text("window", max_chars=40),
            "time_field": form.choice("time_field", TIME_FIELDS, "updated_at", "time field")}


def _context(request: Request, who: Viewer, form: Form) -> tuple[str, dict[str, Any]]:
    api = request.app.state.ctx.api
    collections = visible(who.principal, api.collections.list())
    values = dict(form.values())
    values.setdefault("collection", collections[0].name if collections else "")
    context: dict[str, Any] = {"title": "Projection", "collections": collections,
                               "values": values, "map": None, "error": None, "plots": True,
                               "max_points": projection.MAX_POINTS,
                               "default_points": projection.DEFAULT_POINTS}
    try:
        context["map"] = build_map(api, read_request(api, form, collections))
    except EmbedopsError as exc:
        context["error"] = exc
    return "projection.html", context


@router.get("/projection", include_in_schema=False)
def projection_page(request: Request) -> Response:
    """The projection page (the first collection's map when none is chosen)."""
    form = Form.of_query(request)
    return page(request, lambda who: _context(request, who, form))
