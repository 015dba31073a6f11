"""Exception handlers: every error leaves the service as ``{"error": {"code", "message"}}``.

EmbedopsError carries its own HTTP status; FastAPI's validation errors become 422 in the same
envelope, with the failing field named; anything unexpected becomes a 500 that names the request
id (the traceback goes to the log, never to the client).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from embedops.errors import EmbedopsError

log = logging.getLogger("embedops.serve")

_HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 406: "not_acceptable", 413: "limit_exceeded",
    415: "unsupported_media_type", 422: "invalid_input", 429: "too_many_requests",
}


def envelope(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Any:
    """The JSON error response every failure uses."""
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def _where(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "/".join(str(p) for p in loc) or "request"


def _validation_message(exc: RequestValidationError) -> str:
    problems = []
    for err in exc.errors()[:5]:
        problems.append(f"{_where(tuple(err.get('loc', ())))}: {err.get('msg', 'invalid')}")
    more = len(exc.errors()) - len(problems)
    return "invalid request: " + "; ".join(problems) + (f" (and {more} more)" if more > 0 else "")


async def _embedops_error(request: Request, exc: Exception) -> Any:
    assert isinstance(exc, EmbedopsError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
    if exc.http_status >= 500:
        log.error("request failed: %s", exc.code, extra={"fields": _ids(request)})
    return JSONResponse({"error": exc.to_dict()}, status_code=exc.http_status, headers=headers)


async def _validation_error(request: Request, exc: Exception) -> Any:
    assert isinstance(exc, RequestValidationError)
    return envelope(422, "invalid_input", _validation_message(exc))


async def _http_error(request: Request, exc: Exception) -> Any:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return envelope(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))


async def _unexpected(request: Request, exc: Exception) -> Any:
    ids = _ids(request)
    log.exception("unhandled error", extra={"fields": ids})
    return envelope(
        500, "internal_error",
        f"internal error (request id {ids.get('request_id', '?')}); the server log has details",
    )


def _ids(request: Request) -> dict[str, Any]:
    return {"request_id": request.scope.get("embedops.request_id"), "path": request.url.path}


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(EmbedopsError, _embedops_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
