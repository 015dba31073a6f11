"""The error answers of the OpenAPI document: ``responses=errors(404, 409)`` on a route or a
router lists what it may answer besides success, each in the error envelope
``{"error": {"code", "message"}}`` (``serve.errors``).

Which routes answer what: every route with an API key answers 401 (no or bad key) and 403
(role too low), and 429 when rate limits are on; every route with parameters or a body answers
422; every route with a body answers 400 (not JSON), 413 (``max_body_bytes``, the per-request
limits) and 408 (a body sent too slowly); a route under ``/v1/collections/{name}`` answers 404
for an unknown collection; 409 where a version or state conflicts; 503 where an index or model
is not ready. (A schemathesis run of every route, with and without a key, finds no status
missing from the document.)
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    """What went wrong (``code``, stable) and what to do (``message``)."""

    code: str
    message: str


class ErrorBody(BaseModel):
    """Every error answer of the API."""

    error: ErrorDetail


_WHAT = {
    400: "The body is not valid JSON",
    401: "No API key, or an unknown or revoked one",
    403: "The key's role is too low for this route",
    404: "The collection, model, item, golden set or rollout does not exist",
    408: "The request body was sent too slowly",
    409: "A conflict: a model version, dimension or tokenizer mismatch, or a rollout in "
         "another state, or a name already taken",
    413: "The request is over a limit (body size, batch size, text length, k)",
    422: "The request is malformed (the failing field is named)",
    429: "The key is over its rate limit (see Retry-After)",
    503: "Not ready: no index built yet, or the service is starting",
}

#: What every route that needs an API key may answer.
AUTH = (401, 403, 429)
#: What every route that reads a JSON body may answer, besides ``AUTH``.
BODY = (400, 408, 413, 422)


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route or router: each status with its meaning and the envelope."""
    return {code: {"model": ErrorBody, "description": _WHAT[code]} for code in sorted(set(codes))}
