"""Structured JSON logs: one object per line, with the request id of the request being served.

By default no text content and no keys are logged: a request line names the route, status,
latency, key id and model version only.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

LOGGER = "embedops.serve"


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", ...fields}``; exceptions as a ``exc`` string."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup(level: str = "info", stream: Any = None) -> logging.Logger:
    """Send the service's logs (and uvicorn's) as JSON lines to ``stream`` (default stderr)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in (LOGGER, "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
    # Our own request line replaces uvicorn's access log (which has no request id).
    logging.getLogger("uvicorn.access").disabled = True
    return logging.getLogger(LOGGER)


def log_request(
    logger: logging.Logger,
    *,
    request_id: str,
    method: str,
    route: str,
    status: int,
    started: float,
    key_id: str | None,
    model_version: str | None,
) -> None:
    """One line per request (no bodies, no keys)."""
    if not logger.isEnabledFor(logging.INFO):
        return
    fields = {
        "request_id": request_id,
        "method": method,
        "route": route,
        "status": status,
        "ms": round((time.perf_counter() - started) * 1000, 2),
        "key_id": key_id,
        "model_version": model_version,
    }
    logger.info("request", extra={"fields": fields})
