"""Model migration over HTTP (admin role), the same steps as ``embedops migrate``.

``POST /v1/collections/{name}/migrate`` validates and starts a migration in the server (202;
``dry_run`` answers the plan with 200 and changes nothing; ``from_proposal`` migrates to an
accepted retrain proposal's candidate, as ``embedops migrate --from-proposal``);
``GET .../migrate`` shows its step.
Live search traffic feeds the canary gates, so ``min_traffic`` keeps its default here.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from embedops.serve.auth import ADMIN
from embedops.serve.keys import Principal
from embedops.serve.logging import LOGGER
from embedops.serve.openapi import AUTH, BODY, ErrorBody, errors

log = logging.getLogger(LOGGER)
router = APIRouter(prefix="/v1/collections/{name}/migrate", tags=["rollout"],
                   responses={**errors(*AUTH, *BODY, 404, 409),
                              507: {"model": ErrorBody, "description": "Not enough disk for "
                                    "the new model's vectors and index"}})
_GUARD = threading.Lock()


class MigrateBody(BaseModel):
    """A migration request; the fields are those of ``lifecycle.migrate.MigrateOptions``."""

    model_config = ConfigDict(extra="forbid")
    to: str | None = Field(None, min_length=1, max_length=200,
                           description="name, name@N; omit to resume a migration")
    dry_run: bool = False
    golden_set: str | None = Field(None, max_length=64)
    require_golden: bool = True
    golden_k: int = Field(10, ge=1, le=1000)
    recall_tolerance: float = Field(0.02, ge=0, le=1)
    min_recall: float | None = Field(None, ge=0, le=1)
    max_p99_ms: float = Field(1000.0, gt=0)
    max_error_ratio: float = Field(0.01, ge=0, le=1)
    min_traffic: int = Field(100, ge=0)
    shadow_seconds: float = Field(0.0, ge=0, le=86_400)
    canary_seconds: float = Field(60.0, ge=0, le=86_400)
    canary_share: float = Field(0.1, gt=0, le=1)
    rate: float | None = Field(None, gt=0, description="Backfill items per second.")
    index_kind: str | None = Field(None, max_length=16)
    from_proposal: str | None = Field(None, min_length=1, max_length=64,
                                      description="Migrate to the candidate of this accepted "
                                      "retrain proposal (leave 'to' out)")


def _threads(request: Request) -> dict[str, threading.Thread]:
    with _GUARD:
        found: dict[str, threading.Thread] | None = getattr(request.app.state, "migrations",
                                                            None)
        if found is None:
            found = {}
            request.app.state.migrations = found
        return found


def _migrations(request: Request, name: str, who: str) -> Any:
    from embedops.lifecycle.migrate import Migrations
    from embedops.serve.rollouts import service_for

    service = service_for(request.app)
    return Migrations(request.app.state.ctx.api, service.manager(name, who), who)


@router.post("", summary="Migrate a collection to a new model", status_code=202)
def start(request: Request, response: Response, name: str, body: MigrateBody,
          who: Principal = ADMIN) -> Any:
    """Validate everything (model, golden set, gates, disk space), then run backfill, candidate
    index, golden gate, shadow, canary, promotion and finish in the background; a failed gate
    rolls back. Posting again while it runs answers its state; after a restart it resumes."""
    from embedops.errors import InvalidInput
    from embedops.lifecycle.migrate import MigrateOptions
    from embedops.lifecycle.proposals import Proposals

    options = MigrateOptions(**body.model_dump(exclude={"to", "dry_run", "from_proposal"}))
    migrations = _migrations(request, name, who.key_id)
    proposals = Proposals(request.app.state.ctx.api, who.key_id, migrations.rollouts)
    target = body.to
    if body.from_proposal:
        if body.to:
            raise InvalidInput("'from_proposal' takes the model from the proposal",
                               "leave 'to' out")
        target = proposals.check(body.from_proposal, name)["candidate"]
    if body.dry_run:
        if not target:
            raise InvalidInput("a dry run needs 'to'", "name the model to migrate to")
        response.status_code = 200
        return {"plan": migrations.plan(name, target, options).to_dict()}
    threads = _threads(request)
    with _GUARD:
        running = threads.get(name)
        if running is not None and running.is_alive():
            return {"migration": migrations.status(name), "running": True}
        state = migrations.begin(name, target, options)
        # A proposal's migration is the same one, begun above; the proposal records its end.
        work = (lambda: proposals.migrate(body.from_proposal, options, collection=name)) \
            if body.from_proposal else (lambda: migrations.run(name, None))
        thread = threading.Thread(target=_run, args=(work,), name=f"migrate-{name}",
                                  daemon=True)
        threads[name] = thread
        thread.start()
    return {"migration": state, "running": True}


def _run(work: Any) -> None:
    try:
        work()
    except Exception:  # noqa: BLE001 - a thread has no caller; GET .../migrate shows the step
        log.exception("migration of a collection failed; POST .../migrate resumes it")


@router.get("", summary="Migration state")
def status(request: Request, name: str, who: Principal = ADMIN) -> Any:
    """The migration's last completed step (``done`` or ``rolled_back`` at the end), its
    options and plan, and the rollout's phase."""
    running = _threads(request).get(name)
    return {"migration": _migrations(request, name, who.key_id).status(name),
            "running": bool(running and running.is_alive())}
