"""Authentication and roles: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.

No key → 401; a valid key whose role is too low → 403; a key over its role's rate limit → 429
(see ``serve.ratelimit``). With auth turned off (``--no-auth``) every request acts as the admin
principal ``anonymous``, which is never rate-limited.

Scopes are enforced here, in ``authenticate``, which every API route, the search route's own
handler and the console pass through: when the matched route names a collection (the
``{name}`` of ``/v1/collections/{name}/...``, a ``{collection}`` path parameter, or a
``collection`` query parameter), a scoped key that may not see it, or asks for one that does
not exist, gets the same 404 (``Principal.hidden``) without the list of known collections.
A scoped key is refused ``/metrics`` (it names every collection). Models are shared, not
tenant data: a scoped key may embed with (``/v1/embeddings``, ``/v1/embed``) and list any model.
Listing routes filter with ``visible``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from embedops.errors import CollectionNotFound, Forbidden, Unauthorized
from embedops.serve.keys import Principal, Role
from embedops.serve.ratelimit import limiter_for

ANONYMOUS = Principal("anonymous", Role.admin)

_bearer = HTTPBearer(auto_error=False, description="An embedops API key: eok_<id>_<secret>")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An embedops API key")
_T = TypeVar("_T")


def named_collection(request: Request) -> str | None:
    """The collection the matched route names, if any (see the module doc)."""
    route = request.scope.get("route")
    path = str(getattr(route, "path", "") or request.url.path)
    params = request.path_params
    if path.startswith("/v1/collections/{name}") and "name" in params:
        return str(params["name"])
    if "collection" in params:
        return str(params["collection"])
    value = request.query_params.get("collection")
    return value if value else None


def check_collection(request: Request, principal: Principal, name: str) -> None:
    """Nothing when ``principal`` may use collection ``name``; for a scoped principal, the same
    404 whether ``name`` is out of scope or does not exist (an unscoped one is left to the
    engine's own 404)."""
    if not principal.scoped:
        return
    if not principal.may_see(name):
        raise principal.hidden(name)
    try:
        request.app.state.ctx.api.collections.info(name)
    except CollectionNotFound:
        raise principal.hidden(name) from None


def visible(principal: Principal, rows: Iterable[_T], name: Callable[[_T], str] | None = None
            ) -> list[_T]:
    """The rows (collections, or anything with a collection name) ``principal`` may see."""
    get = name or (lambda row: str(getattr(row, "name")))  # noqa: B009
    return [row for row in rows if principal.may_see(get(row))]


def guard_scope(request: Request, principal: Principal) -> None:
    """The one scope check of every authenticated request (see the module doc)."""
    if not principal.scoped:
        return
    if request.url.path == "/metrics":
        raise Forbidden(f"key {principal.key_id} is scoped; /metrics names every collection",
                        "read metrics with an unscoped key")
    name = named_collection(request)
    if name is not None:
        check_collection(request, principal, name)


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
    limiter = limiter_for(request.app, principal)
    if limiter is not None:
        limiter.hit(principal)
    guard_scope(request, principal)
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
