"""The HTTP side of rollouts: one ``RolloutService`` per app, and search routed through it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request

from embedops.lifecycle.routing import HEADER
from embedops.lifecycle.service import RolloutService

_GUARD = threading.Lock()


def service_for(app: FastAPI) -> RolloutService:
    """The app's RolloutService, built on first use (``app.state.rollouts``)."""
    service = getattr(app.state, "rollouts", None)
    if service is None:
        with _GUARD:
            service = getattr(app.state, "rollouts", None)
            if service is None:
                service = RolloutService(app.state.ctx.api)
                app.state.rollouts = service
    assert isinstance(service, RolloutService)
    return service


def route_search(request: Request, collection: str, pinned: str | None,
                 run: Callable[[str | None], Any]) -> Any:
    """Answer a search request through the app's rollout router (see ``lifecycle.routing``);
    the caller is the request's API key id, else its client address."""
    service = service_for(request.app)
    caller = getattr(request.state, "key_id", None) or (
        request.client.host if request.client else "unknown")
    return service.router.search(collection, caller, request.headers.get(HEADER), pinned, run)
