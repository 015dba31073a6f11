"""``/healthz`` (the process is up), ``/readyz`` (indexes loaded, warm-up done), ``/metrics``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from embedops.serve.auth import authorize
from embedops.serve.keys import Role
from embedops.serve.openapi import AUTH, errors

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    """Always 200 while the process serves requests."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Indexes are loaded and verified, warm-up is done",
    responses={503: {"description": "Still starting, a collection failed to load, an index "
                                    "diverges from the catalog, or an external index backend "
                                    "(Milvus) does not answer"}},
)
def readyz(request: Request) -> Any:
    """200 once start-up loaded every served index and ran a warm-up query, and no served index
    diverges from the catalog (``collections.<name>.consistency``); 503 before or otherwise.
    Each collection says what its load quarantined or rebuilt."""
    ctx = request.app.state.ctx
    diverged = sorted(name for name, w in ctx.warmup.items()
                      if (w.get("consistency") or {}).get("state") == "diverged")
    unreachable = ctx.api.index_problems() if ctx.ready else {}
    ready = bool(ctx.ready) and not diverged and not unreachable
    status = "ready" if ready else (
        "starting" if not ctx.ready else "diverged" if diverged else "index unreachable")
    body: dict[str, Any] = {"status": status, "collections": ctx.warmup}
    if unreachable:
        body["unreachable"] = unreachable
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses=errors(*AUTH))
def metrics(request: Request) -> Response:
    """The service's metrics in the Prometheus text format. They name collections and count
    their items, so a key of role read is needed unless the server runs with
    ``--public-metrics`` (or ``--no-auth``)."""
    ctx = request.app.state.ctx
    if not ctx.settings.public_metrics:
        authorize(request, Role.read)
    data, content_type = ctx.metrics.render()
    return Response(content=data, media_type=content_type)
