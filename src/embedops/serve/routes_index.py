"""A collection's served index: status, verify, rebuild (and swap), roll back."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from embedops.engine import audit
from embedops.serve.auth import ADMIN, READ, WRITE
from embedops.serve.keys import Principal
from embedops.serve.openapi import AUTH, BODY, errors
from embedops.serve.respond import as_dict, named
from embedops.serve.schemas import IndexBuild

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


@router.post("/rollback", summary="Serve the previous snapshot")
def rollback_index(request: Request, response: Response, name: str, who: Principal = ADMIN) -> Any:
    """Point the collection back at its previous good snapshot."""
    ctx = request.app.state.ctx
    result = ctx.api.rollback_index(name)
    ctx.backends.clear()
    audit.record(ctx.workspace, "index.rollback", who.key_id, collection=name)
    return _answer(response, result)
