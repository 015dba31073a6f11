"""Every answer names the model version that served it: in the body and in a header."""

from __future__ import annotations

from typing import Any

from fastapi import Response
from fastapi.responses import JSONResponse

from embedops.serve.middleware import MODEL_HEADER


def named(response: Response, model_version: str | None, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with ``model_version`` set, and the ``X-Model-Version`` header on ``response``."""
    if model_version:
        response.headers[MODEL_HEADER] = model_version
    return {"model_version": model_version, **body}


def named_json(model_version: str | None, body: dict[str, Any]) -> JSONResponse:
    """Like ``named`` but answered directly: large bodies (vectors, hits) skip FastAPI's
    per-value ``jsonable_encoder`` walk, which costs more than the search itself."""
    headers = {MODEL_HEADER: model_version} if model_version else None
    return JSONResponse({"model_version": model_version, **body}, headers=headers)


def as_dict(obj: Any) -> Any:
    """A dataclass (with or without ``to_dict``) or a plain value, as JSON-ready data."""
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return obj
