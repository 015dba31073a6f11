"""``/healthz`` (the process is up), ``/readyz`` (indexes loaded, warm-up done), ``/metrics``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    """Always 200 while the process serves requests."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Indexes are loaded and verified, warm-up is done",
    responses={503: {"description": "Still starting, or a collection failed to load"}},
)
def readyz(request: Request) -> Any:
    """200 once start-up loaded every served index and ran a warm-up query; 503 before."""
    ctx = request.app.state.ctx
    body = {"status": "ready" if ctx.ready else "starting", "collections": ctx.warmup}
    return JSONResponse(body, status_code=200 if ctx.ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """The service's metrics in the Prometheus text format."""
    data, content_type = request.app.state.ctx.metrics.render()
    return Response(content=data, media_type=content_type)
