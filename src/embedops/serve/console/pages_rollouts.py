"""Page 7, rollouts: the state of each collection's rollout, per-version latency, errors and
overlap, the gate verdicts, and (admin role) promote, roll back, abort and finish, each
behind a confirmation page and a CSRF-checked POST, through the app's ``RolloutService``
(the same steps, routing lock and audit log as ``/v1/collections/{name}/rollout``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from embedops.errors import EmbedopsError, NotFound, Unauthorized
from embedops.lifecycle import RolloutNotFound
from embedops.serve.auth import visible
from embedops.serve.console.forms import Form
from embedops.serve.console.render import HEADERS, error_page, page
from embedops.serve.console.session import CSRF_FIELD, Viewer, check_csrf, require, viewer
from embedops.serve.keys import Role
from embedops.serve.rollouts import service_for

router = APIRouter()
ACTIONS = {
    "promote": "Promote the candidate: it serves every search from now on (its gates must "
               "hold unless forced).",
    "rollback": "Roll back: the previous version serves every search again and the candidate "
                "is no longer written.",
    "abort": "Abort the rollout before promotion: the active version never changed.",
    "finish": "Finish a promoted rollout: the previous version is no longer written, and "
              "rollback is no longer possible.",
}


def rollout_status(request: Request, who: Viewer, collection: str) -> dict[str, Any] | None:
    """State, figures and gate verdicts of ``collection``'s rollout (None: never had one).
    Read without acting: the gate evaluator, not a page view, rolls back broken canaries."""
    service = service_for(request.app)
    try:
        status = service.manager(collection, who.principal.key_id).status(collection,
                                                                            check=False)
    except RolloutNotFound:
        return None
    status["backfill_running"] = service.backfilling(collection)
    return dict(status)


def _page(request: Request, who: Viewer, form: Form) -> tuple[str, dict[str, Any]]:
    api = request.app.state.ctx.api
    collections = visible(who.principal, api.collections.list())
    store = service_for(request.app).store
    states = {c.name: store.get(c.name) for c in collections}
    live = [name for name, s in states.items() if s is not None and s.live]
    default = live[0] if live else (collections[0].name if collections else "")
    context: dict[str, Any] = {"title": "Rollouts", "collections": collections,
                               "states": states, "status": None, "error": None,
                               "actions": ACTIONS, "done": form.text("done", max_chars=20)}
    try:
        name = form.text("collection", default, max_chars=64)
        if name and name not in states:
            raise NotFound(f"no collection named '{name}'")
        context["collection"] = name
        context["status"] = rollout_status(request, who, name) if name else None
        state = states.get(name)
        context["live"] = bool(state is not None and state.live)
    except EmbedopsError as exc:
        context["error"] = exc
    return "rollouts.html", context


@router.get("/rollouts", include_in_schema=False)
def rollouts(request: Request) -> Response:
    """Every collection's rollout phase, and one rollout in detail."""
    form = Form.of_query(request)
    return page(request, lambda who: _page(request, who, form))


def _action(name: str) -> str:
    if name not in ACTIONS:
        raise NotFound(f"no rollout action '{name}'", f"use one of {', '.join(ACTIONS)}")
    return name


@router.get("/rollouts/{collection}/confirm", include_in_schema=False)
def confirm(request: Request, collection: str) -> Response:
    """The confirmation step of an action (admin role)."""
    form = Form.of_query(request)

    def build(who: Viewer) -> tuple[str, dict[str, Any]]:
        action = _action(form.text("action", required=True, label="action", max_chars=20))
        status = rollout_status(request, who, collection)
        if status is None:
            raise NotFound(f"'{collection}' has no rollout")
        return "confirm.html", {"title": f"Confirm {action}", "collection": collection,
                                "action": action, "what": ACTIONS[action], "status": status}
    return page(request, build, Role.admin)


@router.post("/rollouts/{collection}/{action}", include_in_schema=False)
async def act(request: Request, collection: str, action: str) -> Response:
    """Run a confirmed action (admin role, CSRF token) and show the rollout again."""
    who: Viewer | None = None
    try:
        form = await Form.of_body(request)
        who = viewer(request)
        if who is None:
            raise Unauthorized("sign in to the console first", "open /ui/login")
        require(who, Role.admin)
        check_csrf(request, who.session.csrf, form.raw(CSRF_FIELD))
        run(request, who, collection, _action(action), form)
    except Exception as exc:  # noqa: BLE001 - shown on the page, never a traceback
        return error_page(request, exc, who)
    url = f"/ui/rollouts?collection={quote(collection)}&done={action}"
    return RedirectResponse(url, status_code=303, headers=HEADERS)


def run(request: Request, who: Viewer, collection: str, action: str, form: Form) -> None:
    """One rollout step, as the admin key of the session."""
    manager = service_for(request.app).manager(collection, who.principal.key_id)
    reason = form.text("reason", max_chars=500) or None
    if action == "promote":
        manager.promote(collection, force=form.raw("force") == "on")
    elif action == "rollback":
        manager.rollback(collection, reason or "rolled back from the console")
    elif action == "abort":
        manager.abort(collection, reason or "aborted from the console")
    else:
        manager.finish(collection)
