"""``GET /v1/models`` and ``GET /v1/models/{ref}``: the model registry, read-only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from embedops.serve.auth import READ
from embedops.serve.middleware import MODEL_HEADER
from embedops.serve.openapi import AUTH, errors

router = APIRouter(prefix="/v1/models", tags=["models"], responses=errors(*AUTH, 404, 422))

_SUMMARY = ("name", "version", "kind", "dim", "vocab_size", "parent", "created_at", "eval")


@router.get("", summary="List model versions")
def list_models(request: Request, name: str | None = None, _: Any = READ) -> dict[str, Any]:
    """Every model version (of ``name`` if given), oldest first."""
    rows = request.app.state.ctx.api.models.list(name)
    return {
        "models": [{"ref": mv.ref, **{k: mv.manifest.get(k) for k in _SUMMARY}} for mv in rows]
    }


@router.get("/{ref}", summary="Show one model version")
def show_model(request: Request, response: Response, ref: str, _: Any = READ) -> dict[str, Any]:
    """The manifest of ``name``, ``name@N`` or ``name@latest``."""
    mv = request.app.state.ctx.api.models.resolve(ref)
    response.headers[MODEL_HEADER] = mv.ref
    return {"model_version": mv.ref, "manifest": mv.manifest}
