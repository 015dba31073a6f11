"""Model rollouts over HTTP (admin role), the same steps as ``embedops rollout``.

``POST /v1/collections/{name}/rollout`` starts one (the backfill runs in the server),
``GET .../rollout`` shows state, figures and gates, ``POST .../rollout/promote|rollback|abort|
finish`` switch versions. Every step is written to the audit log with the caller's key id.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from embedops.serve.auth import ADMIN
from embedops.serve.keys import Principal
from embedops.serve.openapi import AUTH, BODY, errors
from embedops.serve.respond import named

router = APIRouter(
    prefix="/v1/collections/{name}/rollout", tags=["rollout"],
    responses=errors(*AUTH, *BODY, 404, 409, 503),
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GatesBody(_Strict):
    golden_set: str | None = Field(None, max_length=64)
    golden_k: int = Field(10, ge=1, le=1000)
    recall_tolerance: float = Field(0.02, ge=0, le=1)
    max_p99_ms: float = Field(1000.0, gt=0)
    max_error_ratio: float = Field(0.01, ge=0, le=1)
    min_requests: int = Field(100, ge=0)
    min_requests_to_judge: int = Field(20, ge=1)


class RolloutStart(_Strict):
    model: str = Field(min_length=1, max_length=200, description="name, name@N or name@latest")
    mode: Literal["canary", "shadow"] = "canary"
    share: float = Field(0.1, gt=0, le=1, description="Canary share of search traffic.")
    rate: float | None = Field(None, gt=0, description="Backfill items per second.")
    index_kind: Literal["flat", "hnsw", "ivf", "ivfpq", "sq8"] | None = None
    gates: GatesBody | None = Field(None, description="Promotion gates (defaults apply).")


class RolloutAction(_Strict):
    reason: str | None = Field(None, max_length=500)
    force: bool = Field(False, description="promote: skip the gates (audited).")


def _service(request: Request) -> Any:
    from embedops.serve.rollouts import service_for

    return service_for(request.app)


def _answer(response: Response, state: Any) -> dict[str, Any]:
    body = state if isinstance(state, dict) else state.to_dict()
    version = body.get("candidate") if body.get("phase") == "promoted" else body.get("previous")
    return named(response, version, {"rollout": body})


@router.post("", summary="Start a rollout", status_code=202)
def start(request: Request, response: Response, name: str, body: RolloutStart,
          who: Principal = ADMIN) -> Any:
    """Make ``model`` the candidate (dual write starts now), backfill it in the background,
    then serve it as a canary or in shadow. Calling again while backfilling resumes it."""
    from embedops.lifecycle.gates import GateConfig
    from embedops.lifecycle.rollout import BACKFILLING

    service = _service(request)
    current = service.store.get(name)
    manager = service.manager(name, who.key_id)
    if current is None or not current.live or current.phase != BACKFILLING:
        gates = GateConfig(**(body.gates.model_dump() if body.gates else {}))
        current = manager.start(name, body.model, body.mode, body.share, body.rate, gates,
                                body.index_kind)
    service.start_backfill(name, who.key_id)
    return _answer(response, current)


@router.get("", summary="Rollout state, figures and gates")
def status(request: Request, response: Response, name: str, who: Principal = ADMIN) -> Any:
    """Phase, backfill progress, per-version latency/errors/overlap and each gate's verdict (a
    canary whose gates broke is rolled back by this call)."""
    service = _service(request)
    body = service.manager(name, who.key_id).status(name)
    body["backfill_running"] = service.backfilling(name)
    return _answer(response, body)


@router.post("/promote", summary="Promote the candidate")
def promote(request: Request, response: Response, name: str, body: RolloutAction | None = None,
            who: Principal = ADMIN) -> Any:
    """Switch to the candidate in one step once its gates hold (409 ``gate_failed`` if not)."""
    force = bool(body and body.force)
    return _answer(response, _service(request).manager(name, who.key_id).promote(name, force))


@router.post("/rollback", summary="Roll back to the previous version")
def rollback(request: Request, response: Response, name: str,
             body: RolloutAction | None = None, who: Principal = ADMIN) -> Any:
    """Serve the previous version again (before or after promotion)."""
    reason = (body.reason if body else None) or "rolled back by hand"
    return _answer(response, _service(request).manager(name, who.key_id).rollback(name, reason))


@router.post("/abort", summary="Abort a rollout before promotion")
def abort(request: Request, response: Response, name: str, body: RolloutAction | None = None,
          who: Principal = ADMIN) -> Any:
    """Stop a backfilling, canary or shadow rollout; the active version never changed."""
    reason = (body.reason if body else None) or "aborted by hand"
    return _answer(response, _service(request).manager(name, who.key_id).abort(name, reason))


@router.post("/finish", summary="Finish a promoted rollout")
def finish(request: Request, response: Response, name: str, who: Principal = ADMIN) -> Any:
    """Stop writing the previous version; rollback is no longer possible."""
    return _answer(response, _service(request).manager(name, who.key_id).finish(name))
