"""Collections (create, list, show, delete) and their items (upsert, delete in batches)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response

from embedops.engine import audit
from embedops.serve.auth import ADMIN, READ, WRITE, visible
from embedops.serve.keys import Principal
from embedops.serve.limits import check_batch, check_texts
from embedops.serve.openapi import AUTH, BODY, errors
from embedops.serve.ratelimit import check_items
from embedops.serve.respond import as_dict, named
from embedops.serve.schemas import CollectionCreate, ItemsDelete, ItemsUpsert, ItemsWhere

router = APIRouter(
    prefix="/v1/collections", tags=["collections"],
    responses=errors(*AUTH, *BODY, 404, 409, 503),
)


@router.post("", status_code=201, summary="Create a collection")
def create_collection(
    request: Request, response: Response, body: CollectionCreate, who: Principal = ADMIN
) -> dict[str, Any]:
    """A new, empty collection whose items are embedded with ``model``."""
    ctx = request.app.state.ctx
    who.require_scope(body.name)
    info = ctx.api.collections.create(body.name, body.model, metric=body.metric,
                                      redact=body.redact)
    audit.record(ctx.workspace, "collection.create", who.key_id, collection=info.name,
                 model_version=info.model_version)
    return named(response, info.model_version, {"collection": as_dict(info)})


@router.get("", summary="List collections")
def list_collections(request: Request, who: Principal = READ) -> dict[str, Any]:
    """Every collection (that the key may see) with its active model version and item count."""
    rows = visible(who, request.app.state.ctx.api.collections.list())
    return {"collections": [as_dict(c) for c in rows]}


@router.get("/{name}", summary="Show a collection")
def show_collection(
    request: Request, response: Response, name: str, _: Any = READ
) -> dict[str, Any]:
    """Counts, vectors per model version, recent ingest runs and index status."""
    api = request.app.state.ctx.api
    info = api.collections.info(name)
    return named(response, info.model_version, {"collection": api.collections.show(name)})


@router.delete("/{name}", summary="Delete a collection")
def delete_collection(request: Request, name: str, who: Principal = ADMIN) -> dict[str, Any]:
    """Delete a collection with its items, vectors and indexes."""
    ctx = request.app.state.ctx
    ctx.api.collections.delete(name)
    audit.record(ctx.workspace, "collection.delete", who.key_id, collection=name)
    return {"deleted": name}


@router.post("/{name}/items", summary="Upsert items (idempotent)")
def upsert_items(
    request: Request, response: Response, name: str, body: ItemsUpsert, who: Principal = WRITE
) -> dict[str, Any]:
    """Insert or update items; items whose text and metadata are unchanged are not re-embedded."""
    ctx = request.app.state.ctx
    check_batch(ctx.settings, len(body.items), "items")
    check_texts(ctx.settings, [item.text for item in body.items], "item")
    check_items(request, who, name, [item.id for item in body.items])
    report = ctx.api.upsert_items(name, [item.model_dump() for item in body.items])
    info = ctx.api.collections.info(name)
    return named(response, info.model_version, {"collection": name, **as_dict(report)})


@router.post("/{name}/items/delete", summary="Delete items by id")
def delete_items(
    request: Request, response: Response, name: str, body: ItemsDelete, _: Any = WRITE
) -> dict[str, Any]:
    """Delete items (ids that do not exist are ignored; the count says how many went)."""
    ctx = request.app.state.ctx
    check_batch(ctx.settings, len(body.ids), "ids")
    deleted = ctx.api.delete_items(name, body.ids)
    info = ctx.api.collections.info(name)
    return named(response, info.model_version, {"collection": name, "deleted": deleted})


@router.get("/{name}/items", summary="Get items by id")
def get_items(
    request: Request, response: Response, name: str,
    ids: list[str] = Query(..., min_length=1, max_length=1000,  # noqa: B008 - FastAPI's idiom
                           description="Item ids (repeat the parameter)."),
    _: Any = READ,
) -> dict[str, Any]:
    """The live items with these ids, in the order asked (unknown or deleted ids are left out),
    with their content hash and timestamps."""
    api = request.app.state.ctx.api
    items = api.get_items(name, ids)
    info = api.collections.info(name)
    return named(response, info.model_version, {
        "collection": name,
        "items": [{"id": it.id, "text": it.text, "metadata": dict(it.metadata),
                   "content_sha256": it.content_sha256, "created_at": it.created_at,
                   "updated_at": it.updated_at} for it in items],
    })


@router.post("/{name}/items/where", summary="Ids of the items matching a filter")
def items_where(
    request: Request, response: Response, name: str, body: ItemsWhere, _: Any = READ
) -> dict[str, Any]:
    """Ids of the live items whose metadata pass ``filters`` (a page of them: ``offset``,
    ``limit``), and how many match in all."""
    api = request.app.state.ctx.api
    ids = api.ids_where(name, body.filters)
    info = api.collections.info(name)
    return named(response, info.model_version, {
        "collection": name, "total": len(ids), "ids": ids[body.offset:body.offset + body.limit],
    })
