"""Authentication and roles: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.

No key → 401; a valid key whose role is too low → 403; a key over its role's rate limit → 429
(see ``serve.ratelimit``). With auth turned off (``--no-auth``) every request acts as the admin
principal ``anonymous``, which is never rate-limited.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from embedops.errors import Unauthorized
from embedops.serve.keys import Principal, Role

ANONYMOUS = Principal("anonymous", Role.admin)

_bearer = HTTPBearer(auto_error=False, description="An embedops API key: eok_<id>_<secret>")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An embedops API key")


def authenticate(request: Request, bearer: str | None, header: str | None) -> Principal:
    """The principal of a request, or Unauthorized; RateLimited when the key is over its
    role's rate limit (every authenticated route comes through here)."""
    ctx = request.app.state.ctx
    if not ctx.settings.auth:
        return ANONYMOUS
    key = bearer or header
    if not key:
        raise Unauthorized(
            "this endpoint needs an API key",
            "send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'; "
            "create one with 'embedops keys create --role read'",
        )
    principal: Principal = ctx.keys.verify(key.strip())
    request.state.key_id = principal.key_id
    limiter = getattr(request.app.state, "ratelimit", None)
    if limiter is not None:
        limiter.hit(principal)
    return principal


def authorize(request: Request, role: Role) -> Principal:
    """What ``requires(role)`` does, as a plain call: the principal of ``request`` if its key has
    ``role`` or higher, else Unauthorized or Forbidden. The headers are read the way FastAPI's
    ``HTTPBearer`` and ``APIKeyHeader`` read them (scheme ``Bearer`` in any case)."""
    headers = request.headers
    bearer = None
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "bearer" and credentials:
            bearer = credentials
    principal = authenticate(request, bearer, headers.get("x-api-key"))
    principal.require(role)
    return principal


def requires(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency that admits keys of ``role`` or higher and returns the principal."""

    # async, so it runs on the event loop: a sync dependency would cost every request one more
    # hop through the thread pool. Verification is a SQLite read (scrypt only the first time
    # a key is seen by this process).
    async def dependency(
        request: Request,
        bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
        header: str | None = Depends(_header),  # noqa: B008
    ) -> Principal:
        principal = authenticate(request, bearer.credentials if bearer else None, header)
        principal.require(role)
        return principal

    dependency.__name__ = f"requires_{role.name}"
    return dependency


READ = Depends(requires(Role.read))
WRITE = Depends(requires(Role.write))
ADMIN = Depends(requires(Role.admin))
