"""A collection's served index: status, verify, rebuild (and swap), refresh and merge its
segments, roll back."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import Field

from embedops.engine import audit
from embedops.serve.auth import ADMIN, READ, WRITE
from embedops.serve.keys import Principal
from embedops.serve.openapi import AUTH, BODY, errors
from embedops.serve.respond import as_dict, named
from embedops.serve.schemas import IndexBuild, Ref, _Strict

router = APIRouter(
    prefix="/v1/collections/{name}/index", tags=["index"],
    responses=errors(*AUTH, *BODY, 404, 409, 503),
)


def _answer(response: Response, result: Any) -> dict[str, Any]:
    body = as_dict(result)
    body = body if isinstance(body, dict) else {"result": body}
    return named(response, body.get("model_version"), {k: v for k, v in body.items()
                                                        if k != "model_version"})


@router.get("", summary="Index status and freshness")
def index_status(request: Request, response: Response, name: str, _: Any = READ) -> Any:
    """The served snapshot, its item count, and how many changes it does not hold yet."""
    return _answer(response, request.app.state.ctx.api.index_status(name))


@router.post("/verify", summary="Verify snapshot checksums")
def verify_index(request: Request, response: Response, name: str, _: Any = WRITE) -> Any:
    """Check every file of the collection's snapshots against its manifest."""
    return _answer(response, request.app.state.ctx.api.verify_index(name))


@router.post("", summary="Rebuild the index and swap it in")
def build_index(
    request: Request, response: Response, name: str, body: IndexBuild, who: Principal = ADMIN
) -> Any:
    """Build a new snapshot from the store and swap it in atomically; searches keep running."""
    ctx = request.app.state.ctx
    result = ctx.api.build_index(
        name, body.kind, body.params, model_version=body.model_version, quiet=True
    )
    ctx.backends[(name, result["model_version"])] = body.kind
    audit.record(ctx.workspace, "index.rebuild", who.key_id, collection=name, kind=body.kind)
    return _answer(response, result)


class IndexRefresh(_Strict):
    """Which model version's index to refresh, and when its small segments are merged."""

    model_version: Ref | None = None
    max_segments: int = Field(default=10, ge=1, le=1000,
                              description="merge the small segments past this many")
    merge_rate: float | None = Field(
        default=None, ge=0, le=1e9, description="vectors a second the segment builds may add "
        "(0: unlimited; default: the server's EMBEDOPS_MERGE_RATE)")


class IndexMerge(_Strict):
    """Which model version's index to merge, and how fast."""

    model_version: Ref | None = None
    merge_rate: float | None = Field(
        default=None, ge=0, le=1e9, description="vectors a second the merged segment's build "
        "may add (0: unlimited; default: the server's EMBEDOPS_MERGE_RATE)")


@router.post("/refresh", summary="Seal recent writes into a new segment")
def refresh_index(request: Request, response: Response, name: str,
                  body: IndexRefresh | None = None, who: Principal = ADMIN) -> Any:
    """Index the items written since the served snapshot as a new segment (built from those
    items only) and publish it; searches keep running on the previous snapshot meanwhile."""
    ctx, body = request.app.state.ctx, body or IndexRefresh()
    result = ctx.api.refresh_index(name, body.model_version, body.max_segments,
                                   body.merge_rate)
    audit.record(ctx.workspace, "index.refresh", who.key_id, collection=name)
    return _answer(response, result)


@router.post("/merge", summary="Merge the index's segments into one")
def merge_index(request: Request, response: Response, name: str,
                body: IndexMerge | None = None, who: Principal = ADMIN) -> Any:
    """Rebuild every segment (and recent writes) into one segment, dropping tombstones."""
    ctx, body = request.app.state.ctx, body or IndexMerge()
    result = ctx.api.merge_index(name, body.model_version, body.merge_rate)
    audit.record(ctx.workspace, "index.merge", who.key_id, collection=name)
    return _answer(response, result)


@router.post("/rollback", summary="Serve the previous snapshot")
def rollback_index(request: Request, response: Response, name: str, who: Principal = ADMIN) -> Any:
    """Point the collection back at its previous good snapshot."""
    ctx = request.app.state.ctx
    result = ctx.api.rollback_index(name)
    ctx.backends.clear()
    audit.record(ctx.workspace, "index.rollback", who.key_id, collection=name)
    return _answer(response, result)
