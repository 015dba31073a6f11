"""One ASGI middleware for what every request shares: request id, body-size limit and
deadline (``serve.timeouts.BodyDeadline``), the request log line and the latency/error
metrics. Plain ASGI (not BaseHTTPMiddleware), so it adds microseconds, not a task switch, to
each request.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

from embedops.errors import LimitExceeded
from embedops.serve.logging import log_request
from embedops.serve.timeouts import BodyDeadline

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
MODEL_HEADER = "x-model-version"
_MODEL_KEY = MODEL_HEADER.encode()
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _too_large(limit: int, size: int | None = None) -> LimitExceeded:
    got = f"{size} bytes" if size is not None else "more than that"
    return LimitExceeded(
        f"request body is {got}; the limit is {limit} bytes",
        "send fewer or shorter texts per request",
    )


class RequestContext:
    """Wraps the app: ids, limits, logging and metrics for every HTTP request."""

    def __init__(self, app: Any, *, max_body_bytes: int, metrics: Any, logger: Any,
                 body_timeout_s: float = 30.0) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.body_timeout = body_timeout_s
        self.metrics = metrics
        self.log = logger

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        request_id = given if given and _REQUEST_ID.match(given) else uuid.uuid4().hex
        scope["embedops.request_id"] = request_id
        started = time.perf_counter()
        seen: dict[str, Any] = {"status": 500, "model": None}
        if await self._refuse_declared_size(scope, send, request_id):
            return
        body = BodyDeadline(receive, self.body_timeout)

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                headers = list(message.get("headers", []))
                for key, value in headers:
                    if key == _MODEL_KEY:
                        seen["model"] = value.decode("latin-1")
                headers.append((b"x-request-id", request_id.encode()))
                if body.timed_out:  # the rest of a slow body is never read: drop the connection
                    headers.append((b"connection", b"close"))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, self._counting(body), send_wrapper)
        finally:
            self._finish(scope, request_id, started, seen)

    async def _refuse_declared_size(self, scope: dict[str, Any], send: Any, rid: str) -> bool:
        declared = _header(scope, b"content-length")
        if declared is None or not declared.isdigit() or int(declared) <= self.max_body:
            return False
        err = _too_large(self.max_body, int(declared))
        body = json.dumps({"error": err.to_dict()}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", rid.encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        self.metrics.error_counter("body_limit", "413").inc()
        return True

    def _counting(self, receive: Any) -> Any:
        total = {"n": 0}

        async def wrapped() -> dict[str, Any]:
            message = await receive()
            if message["type"] == "http.request":
                total["n"] += len(message.get("body", b""))
                if total["n"] > self.max_body:
                    # An HTTPException, because FastAPI turns any other error raised while it
                    # reads the body into a generic 400.
                    from starlette.exceptions import HTTPException

                    raise HTTPException(413, str(_too_large(self.max_body)))
            return dict(message)

        return wrapped

    def _finish(self, scope: dict[str, Any], rid: str, started: float,
                seen: dict[str, Any]) -> None:
        route = getattr(scope.get("route"), "path_format", None) or "unmatched"
        method = scope["method"] if scope["method"] in _METHODS else "other"  # bounded labels
        status = int(seen["status"])
        model = seen["model"] or ""
        self.metrics.timer(route, method, model).observe(time.perf_counter() - started)
        if status >= 400:
            self.metrics.error_counter(route, str(status)).inc()
        state = scope.get("state") or {}
        log_request(
            self.log, request_id=rid, method=method, route=route, status=status,
            started=started, key_id=state.get("key_id"), model_version=seen["model"],
        )
