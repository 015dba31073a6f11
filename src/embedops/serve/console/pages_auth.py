"""Login, logout, the console's front door and its static files."""

from __future__ import annotations

import hmac
import secrets

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from embedops.errors import EmbedopsError, Forbidden, NotFound
from embedops.serve.console.forms import Form
from embedops.serve.console.render import HEADERS, HERE, error_page, html
from embedops.serve.console.session import (
    COOKIE,
    CSRF_FIELD,
    IDLE_S,
    LOGIN_COOKIE,
    auth_on,
    check_csrf,
    clear_cookie,
    same_origin,
    set_cookie,
    sign_in,
    store_for,
    viewer,
)

router = APIRouter()
STATIC = {p.name: p for p in (HERE / "static").iterdir() if p.suffix in (".js", ".css")}
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
LOGIN_TTL_S = 3600.0


def safe_next(target: str | None) -> str:
    """Where to go after login: a console path, else the overview (no open redirect)."""
    if target and target.startswith("/ui/") and not target.startswith("//") \
            and "\\" not in target and "\n" not in target and "\r" not in target:
        return target
    return "/ui/overview"


@router.get("", include_in_schema=False)
@router.get("/", include_in_schema=False)
def index() -> Response:
    """The console's front door: the overview."""
    return RedirectResponse("/ui/overview", status_code=303, headers=HEADERS)


@router.get("/static/{name}", include_in_schema=False)
def static(name: str) -> Response:
    """A vendored or own asset of the console (a fixed list; cached for a day)."""
    path = STATIC.get(name)
    if path is None:
        raise NotFound(f"no console asset named {name!r}")
    return FileResponse(path, media_type=_TYPES[path.suffix],
                        headers={"Cache-Control": "public, max-age=86400",
                                 "X-Content-Type-Options": "nosniff"})


def _login_form(request: Request, error: Exception | None = None, status: int = 200,
                next_url: str = "") -> Response:
    token = secrets.token_urlsafe(32)
    context = {"title": "Sign in", "login_token": token, "next": safe_next(next_url),
               "error": error}
    response = html(request, "login.html", context, status=status)
    set_cookie(request, response, LOGIN_COOKIE, token, LOGIN_TTL_S)
    return response


@router.get("/login", include_in_schema=False)
def login_page(request: Request) -> Response:
    """The login form (the key goes in a POST body, never in a URL)."""
    if not auth_on(request):
        return RedirectResponse("/ui/overview", status_code=303, headers=HEADERS)
    return _login_form(request, next_url=request.query_params.get("next", ""))


@router.post("/login", include_in_schema=False)
async def login(request: Request) -> Response:
    """Check the key and open a session; a wrong key gives the form again with the error."""
    next_url = ""
    try:
        form = await Form.of_body(request)
        next_url = form.text("next", max_chars=2000)
        expected = request.cookies.get(LOGIN_COOKIE, "")
        sent = form.text(CSRF_FIELD, max_chars=200)
        if not same_origin(request) or not expected or not hmac.compare_digest(
                sent.encode(), expected.encode()):
            raise Forbidden("the login form is stale", "load the login page again")
        key = form.text("key", required=True, label="API key", max_chars=200)
        session = sign_in(request, key)
    except EmbedopsError as exc:
        return _login_form(request, exc, exc.http_status, next_url)
    response = RedirectResponse(safe_next(next_url), status_code=303, headers=HEADERS)
    set_cookie(request, response, COOKIE, session.token, IDLE_S)
    clear_cookie(request, response, LOGIN_COOKIE)
    return response


@router.post("/logout", include_in_schema=False)
async def logout(request: Request) -> Response:
    """Close the session (its CSRF token is needed, so no other site can sign you out)."""
    try:
        who = viewer(request)
        form = await Form.of_body(request)
        if who is not None:
            check_csrf(request, who.session.csrf, form.raw(CSRF_FIELD))
            store_for(request).drop(who.session.token)
    except EmbedopsError as exc:
        return error_page(request, exc, None)
    response = RedirectResponse("/ui/login", status_code=303, headers=HEADERS)
    clear_cookie(request, response, COOKIE)
    return response
