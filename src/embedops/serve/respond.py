"""Every answer names the model version that served it: in the body and in a header.

Large answers (hit lists, vectors) are serialized with orjson, several times faster than the
standard library's ``json`` for lists of dicts and floats. orjson writes NaN and infinities as
``null``, so an answer is always valid JSON (``json.dumps(allow_nan=False)`` raised instead).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Response

from embedops.serve.middleware import MODEL_HEADER

_ORJSON = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _fallback(value: Any) -> Any:
    """What orjson does not serialize itself: numpy values it has no native form for (float16,
    0-d arrays of objects) and sets. Anything else is a TypeError, as with ``json.dumps``."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_bytes(body: Any) -> bytes:
    """``body`` as compact UTF-8 JSON (NaN and infinities as null)."""
    return orjson.dumps(body, default=_fallback, option=_ORJSON)


class FastJSONResponse(Response):
    """A JSON response rendered by orjson (see the module docstring)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json_bytes(content)


def named(response: Response, model_version: str | None, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with ``model_version`` set, and the ``X-Model-Version`` header on ``response``."""
    if model_version:
        response.headers[MODEL_HEADER] = model_version
    return {"model_version": model_version, **body}


def named_json(model_version: str | None, body: dict[str, Any]) -> Response:
    """Like ``named`` but answered directly: large bodies (vectors, hits) skip FastAPI's
    per-value ``jsonable_encoder`` walk, which costs more than the search itself."""
    headers = {MODEL_HEADER: model_version} if model_version else None
    return FastJSONResponse({"model_version": model_version, **body}, headers=headers)


def as_dict(obj: Any) -> Any:
    """A dataclass (with or without ``to_dict``) or a plain value, as JSON-ready data."""
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return obj
