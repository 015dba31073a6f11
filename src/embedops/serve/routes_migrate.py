"""Model migration over HTTP (admin role), the same steps as ``embedops migrate``.

``POST /v1/collections/{name}/migrate`` validates and starts a migration in the server (202;
``dry_run`` answers the plan with 200 and changes nothing; ``from_proposal`` migrates to an
accepted retrain proposal's candidate, as ``embedops migrate --from-proposal``);
``GET .../migrate`` shows its step.
Live search traffic feeds the canary gates, so ``min_traffic`` keeps its default here.

The request validates and records the migration (errors answer at once); the work itself runs
in a worker process at a lower CPU priority (``lifecycle.worker``, ``nice`` in the body), not in
a thread of the server, so searches keep their latency while it runs. The worker reads the
canary's serving figures from the file this server's rollout service writes every few seconds.
"""

from __future__ import annotations

import logging
import subprocess
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
    nice: int = Field(10, ge=0, le=19, description="How far the migration's worker process "
                      "steps back behind serving for the CPU (0 = same priority).")
    from_proposal: str | None = Field(None, min_length=1, max_length=64,
                                      description="Migrate to the candidate of this accepted "
                                      "retrain proposal (leave 'to' out)")


def _workers(request: Request) -> dict[str, subprocess.Popen[bytes]]:
    """The worker processes this app started, by collection (reaped when they end)."""
    with _GUARD:
        found: dict[str, subprocess.Popen[bytes]] | None = getattr(
            request.app.state, "migration_workers", None)
        if found is None:
            found = {}
            request.app.state.migration_workers = found
        for name, worker in list(found.items()):
            if worker.poll() is not None:
                del found[name]
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
    index, golden gate, shadow, canary, promotion and finish in a background worker process at
    a lower CPU priority; a failed gate rolls back. Posting again while it runs answers its
    state; after a restart it resumes."""
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
    from embedops.lifecycle.worker import spawn

    workers = _workers(request)
    with _GUARD:
        if name in workers or migrations.running(name):  # here, or another worker's process
            return {"migration": migrations.status(name), "running": True}
        # A proposal's migration is the same one, begun here; its worker records its end.
        state = migrations.begin(name, target, options)
        api = request.app.state.ctx.api
        workers[name] = spawn({"job": "migrate", "home": str(api.workspace.home),
                               "collection": name, "who": who.key_id,
                               "proposal": body.from_proposal,
                               "nice": int(state["options"].get("nice", body.nice))},
                              api.workspace.rollouts_dir / f"{name}.worker.log")
    log.info("migration started in a worker process",
             extra={"fields": {"collection": name, "pid": workers[name].pid}})
    return {"migration": state, "running": True}


@router.get("", summary="Migration state")
def status(request: Request, name: str, who: Principal = ADMIN) -> Any:
    """The migration's last completed step (``done`` or ``rolled_back`` at the end), its
    options and plan, and the rollout's phase."""
    migrations = _migrations(request, name, who.key_id)
    return {"migration": migrations.status(name),
            "running": name in _workers(request) or migrations.running(name)}
