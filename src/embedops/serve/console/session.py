"""Console sessions: who is looking, with which role, and the CSRF token of their forms.

The login form takes an API key once. The key is checked with the same ``authenticate`` every
API route uses (401 for a bad key, 429 over its role's rate limit) and kept only in this
process's memory, in a session found by a random token; the browser holds nothing but that
token, in a cookie marked HttpOnly, SameSite=Strict, ``Path=/ui`` and Secure when the request
came over TLS. Every later request of the session authenticates the key again, so a revoked
key or a changed role applies at once, and each session has its own CSRF token, which every
form and every htmx request sends back (checked in constant time). A session expires after
``IDLE_S`` without use or ``MAX_AGE_S`` after login.

Sessions live in one server process: with ``--workers N`` a browser needs sticky routing to
keep its session (or signs in again on another worker).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from fastapi import Request, Response

from embedops.errors import Forbidden, Unauthorized
from embedops.serve.auth import ANONYMOUS, authenticate
from embedops.serve.keys import Principal, Role

COOKIE = "embedops_console"
LOGIN_COOKIE = "embedops_console_login"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
PATH = "/ui"
IDLE_S = 8 * 3600.0
MAX_AGE_S = 24 * 3600.0
MAX_SESSIONS = 10_000
_GUARD = threading.Lock()


@dataclass
class Session:
    """One signed-in browser: its token, CSRF token and API key (never sent back out)."""

    token: str
    csrf: str
    key: str | None
    created: float
    seen: float


@dataclass(frozen=True)
class Viewer:
    """The session and principal of one console request."""

    session: Session
    principal: Principal

    @property
    def role(self) -> Role:
        return self.principal.role

    @property
    def can_write(self) -> bool:
        return self.principal.role >= Role.write

    @property
    def can_admin(self) -> bool:
        return self.principal.role >= Role.admin


class SessionStore:
    """Sessions by token, bounded (the least recently used go first) and expiring."""

    def __init__(self, idle_s: float = IDLE_S, max_age_s: float = MAX_AGE_S,
                 max_sessions: int = MAX_SESSIONS) -> None:
        self.idle_s, self.max_age_s, self.max_sessions = idle_s, max_age_s, max_sessions
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def create(self, key: str | None) -> Session:
        """A new session for ``key`` (None when authentication is off)."""
        now = time.time()
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), key, now, now)
        with self._lock:
            self._sessions[session.token] = session
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        return session

    def get(self, token: str | None) -> Session | None:
        """The live session of ``token`` (its idle clock restarts), or None."""
        if not token:
            return None
        now = time.time()
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                return None
            if now - session.seen > self.idle_s or now - session.created > self.max_age_s:
                del self._sessions[token]
                return None
            session.seen = now
            self._sessions.move_to_end(token)
            return session

    def drop(self, token: str | None) -> None:
        """Forget a session (logout, revoked key)."""
        if token:
            with self._lock:
                self._sessions.pop(token, None)

    def __len__(self) -> int:
        return len(self._sessions)


def store_for(request: Request) -> SessionStore:
    """The app's session store (``app.state.console_sessions``), made on first use."""
    state = request.app.state
    store = getattr(state, "console_sessions", None)
    if store is None:
        with _GUARD:
            store = getattr(state, "console_sessions", None)
            if store is None:
                store = state.console_sessions = SessionStore()
    assert isinstance(store, SessionStore)
    return store


def auth_on(request: Request) -> bool:
    """Whether the service requires API keys (``--no-auth`` turns it off)."""
    return bool(request.app.state.ctx.settings.auth)


def viewer(request: Request) -> Viewer | None:
    """Who makes this request: None when there is no live session (sign in first).

    With authentication off there is no login: a session is made on first use and every
    viewer is the admin principal ``anonymous``. Raises Unauthorized when the session's key
    no longer verifies (revoked), RateLimited when it is over its role's limit."""
    store = store_for(request)
    session = store.get(request.cookies.get(COOKIE))
    if not auth_on(request):
        if session is None:
            session = store.create(None)
            request.state.console_new_session = session
        return Viewer(session, ANONYMOUS)
    if session is None or session.key is None:
        return None
    try:
        principal = authenticate(request, None, session.key)
    except Unauthorized:
        store.drop(session.token)
        raise
    return Viewer(session, principal)


def sign_in(request: Request, key: str) -> Session:
    """Check ``key`` as every API route does and open a session for it."""
    authenticate(request, None, key.strip())
    return store_for(request).create(key.strip())


def set_cookie(request: Request, response: Response, name: str, value: str,
               max_age: float) -> None:
    """Set a console cookie: HttpOnly, SameSite=Strict, Path=/ui, Secure over TLS."""
    response.set_cookie(name, value, max_age=int(max_age), path=PATH, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")


def clear_cookie(request: Request, response: Response, name: str) -> None:
    """Remove a console cookie."""
    response.delete_cookie(name, path=PATH, httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")


def same_origin(request: Request) -> bool:
    """False when the request names an Origin that is not this server (a cross-site POST)."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return origin in (f"{request.url.scheme}://{host}", f"http://{host}", f"https://{host}")


def check_csrf(request: Request, expected: str, sent: str | None) -> None:
    """Forbidden unless ``sent`` (form field or header) is ``expected`` and the request
    comes from this origin."""
    token = sent or request.headers.get(CSRF_HEADER) or ""
    if not same_origin(request):
        raise Forbidden("this form was sent from another site", "reload the console page")
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        raise Forbidden("the form's security token is missing or stale",
                        "reload the page and send the form again")


def require(viewer_: Viewer, role: Role) -> None:
    """Forbidden unless the viewer's key has ``role`` or higher."""
    viewer_.principal.require(role)
