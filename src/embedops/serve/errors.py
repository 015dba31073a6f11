"""Exception handlers: every error leaves the service as ``{"error": {"code", "message"}}``.

EmbedopsError carries its own HTTP status; FastAPI's validation errors become 422 in the same
envelope, with the failing field named; anything unexpected becomes a 500 that names the request
id (the traceback goes to the log, never to the client).

The OpenAI-compatible routes (``OPENAI_PATHS``) answer in OpenAI's envelope instead,
``{"error": {"message", "type", "param", "code"}}`` (a superset: ``code`` and ``message`` are
the same), and with 400 where the rest of the API answers 422, as OpenAI does, so that OpenAI's
SDKs raise their own exception for each status. A rate-limited request (429) carries
``Retry-After`` on every route.
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


#: Path prefixes of the OpenAI-compatible routes (``serve.routes_openai``).
OPENAI_PATHS = ("/v1/embeddings", "/v1/models")
_OPENAI_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}


def is_openai(path: str) -> bool:
    """Whether ``path`` is one of the OpenAI-compatible routes."""
    return any(path == p or path.startswith(p + "/") for p in OPENAI_PATHS)


def openai_envelope(
    status: int, code: str, message: str, param: str | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """OpenAI's error response: ``type`` from the status, 422 answered as 400."""
    status = 400 if status == 422 else status
    kind = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def _answer(request: Request, status: int, code: str, message: str, param: str | None = None,
            headers: dict[str, str] | None = None) -> Any:
    """The error response in the envelope of the route ``request`` went to."""
    if is_openai(request.url.path):
        return openai_envelope(status, code, message, param, headers)
    return envelope(status, code, message, headers)


def _where(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "/".join(str(p) for p in loc) or "request"


def _validation_message(exc: RequestValidationError) -> str:
    problems = []
    for err in exc.errors()[:5]:
        problems.append(f"{_where(tuple(err.get('loc', ())))}: {err.get('msg', 'invalid')}")
    more = len(exc.errors()) - len(problems)
    return "invalid request: " + "; ".join(problems) + (f" (and {more} more)" if more > 0 else "")


def _error_headers(exc: EmbedopsError) -> dict[str, str] | None:
    """``WWW-Authenticate`` on a 401, ``Retry-After`` on a rate-limited request."""
    if exc.http_status == 401:
        return {"WWW-Authenticate": "Bearer"}
    retry_after = getattr(exc, "retry_after", None)
    return {"Retry-After": str(retry_after)} if retry_after is not None else None


async def _embedops_error(request: Request, exc: Exception) -> Any:
    assert isinstance(exc, EmbedopsError)
    headers = _error_headers(exc)
    if exc.http_status >= 500:
        log.error("request failed: %s", exc.code, extra={"fields": _ids(request)})
    if is_openai(request.url.path):
        return openai_envelope(exc.http_status, exc.code, str(exc), getattr(exc, "param", None),
                               headers)
    return JSONResponse({"error": exc.to_dict()}, status_code=exc.http_status, headers=headers)


def _first_field(exc: RequestValidationError) -> str | None:
    """The request field the first validation error is about (None: the body as a whole)."""
    for err in exc.errors()[:1]:
        parts = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        return parts[0] if parts else None
    return None


async def _validation_error(request: Request, exc: Exception) -> Any:
    assert isinstance(exc, RequestValidationError)
    return _answer(request, 422, "invalid_input", _validation_message(exc), _first_field(exc))


async def _http_error(request: Request, exc: Exception) -> Any:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return _answer(request, exc.status_code, code, str(exc.detail),
                   headers=getattr(exc, "headers", None))


async def _unexpected(request: Request, exc: Exception) -> Any:
    ids = _ids(request)
    log.exception("unhandled error", extra={"fields": ids})
    return _answer(
        request, 500, "internal_error",
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
