"""Rendering: one Jinja2 environment (autoescaping on for every template), the HTML response
with the console's security headers, and pages that turn any failure into a visible,
escaped message (never a traceback).

Every page handler goes through ``page``: it resolves the viewer (or sends the browser to the
login page), checks the role, runs the handler and renders its template. An ``EmbedopsError``
becomes the error page with the error's status, message and hint; anything else is logged
with the request id and shown as an internal error that names only that id.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from embedops.errors import EmbedopsError, Unauthorized
from embedops.serve.console.session import (
    COOKIE,
    IDLE_S,
    Viewer,
    require,
    set_cookie,
    viewer,
)
from embedops.serve.keys import Role

log = logging.getLogger("embedops.serve")
HERE = Path(__file__).resolve().parent
# The console's own scripts and vendored libraries only; figures are JSON in
# <script type="application/json">, which is data, never run. Plotly sets inline styles.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
       "form-action 'self'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
NAV = [("overview", "Overview"), ("search", "Search"), ("words", "Words"),
       ("projection", "Projection"), ("quality", "Quality"), ("drift", "Drift"),
       ("rollouts", "Rollouts"), ("models", "Models")]

Handler = Callable[[Viewer], Response | tuple[str, dict[str, Any]]]


def _when(ts: Any) -> str:
    """Epoch seconds as ``YYYY-MM-DD HH:MM:SS`` UTC ('' for none)."""
    if ts is None or ts == "":
        return ""
    return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%d %H:%M:%S")


def _age(seconds: Any) -> str:
    """A duration in seconds as ``42s``, ``7m``, ``3.2h`` or ``5.0d``."""
    if seconds is None:
        return "–"
    s = float(seconds)
    if s < 60:
        return f"{s:.0f}s"
    if s < 3600:
        return f"{s / 60:.0f}m"
    if s < 86400:
        return f"{s / 3600:.1f}h"
    return f"{s / 86400:.1f}d"


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return str(value)


def _figure(fig: dict[str, Any]) -> Markup:
    """A figure as JSON for a ``<script type="application/json">`` (``<``, ``>``, ``&`` and
    quotes escaped as \\u sequences, so no text in it can end the script element)."""
    text = json.dumps(fig, separators=(",", ":"), allow_nan=False, default=str)
    for raw, safe in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("'", "\\u0027")):
        text = text.replace(raw, safe)
    return Markup(text)


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The console's Jinja2 environment (templates from the package, autoescaped)."""
    env = Environment(loader=FileSystemLoader(str(HERE / "templates")),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(when=_when, age=_age, num=_num, figure=_figure)
    return env


def html(request: Request, template: str, context: dict[str, Any], status: int = 200,
         who: Viewer | None = None) -> HTMLResponse:
    """Render ``template`` with ``context`` (plus the viewer, the nav and the request)."""
    env = environment()
    body = env.get_template(template).render(
        request=request, viewer=who, nav=NAV, csrf=who.session.csrf if who else "",
        fragment=is_fragment(request), **context)
    response = HTMLResponse(body, status_code=status, headers=HEADERS)
    new = getattr(request.state, "console_new_session", None)
    if new is not None:
        set_cookie(request, response, COOKIE, new.token, IDLE_S)
    return response


def is_fragment(request: Request) -> bool:
    """True for an htmx request that swaps part of a page (no layout around it)."""
    return request.headers.get("hx-request") == "true" \
        and request.headers.get("hx-boosted") != "true"


def login_redirect(request: Request) -> Response:
    """Send the browser to the login page (htmx: a full-page redirect)."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    url = f"/ui/login?next={quote(target, safe='')}"
    if is_fragment(request):
        return Response(status_code=200, headers={"HX-Redirect": url, **HEADERS})
    return RedirectResponse(url, status_code=303, headers=HEADERS)


def error_page(request: Request, exc: Exception, who: Viewer | None) -> HTMLResponse:
    """The error page (or fragment) of ``exc``: message and hint, escaped by the template."""
    if isinstance(exc, EmbedopsError):
        status, code, message, hint = exc.http_status, exc.code, exc.message, exc.hint
    else:
        request_id = request.scope.get("embedops.request_id", "?")
        log.exception("console page failed", extra={"fields": {"path": request.url.path,
                                                               "request_id": request_id}})
        status, code, hint = 500, "internal_error", "the server log has details"
        message = f"internal error (request id {request_id})"
    template = "error_fragment.html" if is_fragment(request) else "error.html"
    context = {"status": status, "code": code, "message": message, "hint": hint,
               "title": "Error"}
    return html(request, template, context, status=status, who=who)


def page(request: Request, handler: Handler, role: Role = Role.read) -> Response:
    """Resolve the viewer, check ``role``, run ``handler`` and render what it returns: a
    response as is, or ``(template, context)``."""
    started = time.perf_counter()
    who: Viewer | None = None
    try:
        who = viewer(request)
        if who is None:
            return login_redirect(request)
        require(who, role)
        result = handler(who)
        if isinstance(result, Response):
            return result
        template, context = result
        context.setdefault("server_ms", round((time.perf_counter() - started) * 1000, 1))
        return html(request, template, context, who=who)
    except Unauthorized:
        return login_redirect(request)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a page, never a traceback
        return error_page(request, exc, who)
