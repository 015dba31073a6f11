"""Golden sets and drift over HTTP, the golden scheduler, and the monitoring gauges.

``GET /v1/golden`` (read), ``POST /v1/golden`` (write: create a set),
``POST /v1/golden/{set}/queries`` (write), ``POST /v1/golden/{set}/run?collection=C`` (write),
``GET /v1/golden/{set}/runs`` (read), ``POST /v1/collections/{name}/drift`` (write).
The router's lifespan registers the gauges in the app's metrics registry and starts/stops the
scheduler (``MonitorSettings``; set ``app.state.monitor_settings`` or
``$EMBEDOPS_GOLDEN_INTERVAL_S``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from embedops.serve.auth import READ, WRITE, check_collection
from embedops.serve.keys import Principal
from embedops.serve.limits import check_texts
from embedops.serve.openapi import AUTH, BODY, errors
from embedops.serve.scheduler import GoldenScheduler, MonitorCollector, MonitorSettings

_LOCK = threading.Lock()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GoldenCreate(_Strict):
    name: str = Field(min_length=1, max_length=64)
    collection: str | None = Field(None, description="Evaluated by the scheduler when set.")
    description: str = Field("", max_length=1000)


class GoldenQueryIn(_Strict):
    query: str = Field(min_length=1, max_length=10_000)
    relevant: list[str] | dict[str, float] = Field(description="ids, or id → grade")


class GoldenQueries(_Strict):
    queries: list[GoldenQueryIn] = Field(min_length=1, max_length=10_000)


class DriftSide(_Strict):
    since: float | None = Field(None, description="Epoch seconds (inclusive).")
    until: float | None = Field(None, description="Epoch seconds (exclusive).")
    texts: list[str] | None = Field(None, min_length=2, max_length=10_000,
                                    description="Texts to embed instead of a time window.")


class DriftRequest(_Strict):
    reference: DriftSide
    current: DriftSide
    time_field: Literal["updated_at", "created_at"] = "updated_at"
    thresholds: dict[str, float] | None = Field(None, description="DriftConfig fields.")


def monitor_db(app: Any) -> Any:
    """The app's MonitorDB (opened on first use) with its gauges registered once."""
    state = app.state
    if getattr(state, "monitor_db", None) is None:
        with _LOCK:
            if getattr(state, "monitor_db", None) is None:
                from embedops.monitor.db import MonitorDB

                db = MonitorDB(state.ctx.workspace)
                state.ctx.metrics.registry.register(MonitorCollector(db))
                state.monitor_db = db
    return state.monitor_db


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    db = monitor_db(app)
    settings = getattr(app.state, "monitor_settings", None) or MonitorSettings.from_env()
    scheduler = GoldenScheduler(lambda: app.state.ctx.api, db, settings)
    app.state.golden_scheduler = scheduler
    scheduler.start()
    try:
        yield
    finally:
        scheduler.stop()


router = APIRouter(
    tags=["monitor"], lifespan=lifespan,
    responses=errors(*AUTH, *BODY, 404, 409, 503),
)


@router.get("/v1/golden", summary="List golden query sets")
def list_sets(request: Request, who: Principal = READ) -> Any:
    """Every golden set with its query count and the collection it is scheduled on (for a
    scoped key: only the sets bound to a collection it may see)."""
    sets = monitor_db(request.app).list_sets()
    if who.scoped:
        sets = [s for s in sets if s.collection is not None and who.may_see(s.collection)]
    return {"sets": [s.to_dict() for s in sets]}


@router.post("/v1/golden", summary="Create a golden query set", status_code=201)
def create_set(request: Request, body: GoldenCreate, who: Principal = WRITE) -> Any:
    """Create an empty set (409 if the name is taken)."""
    if body.collection is not None or who.scoped:
        check_collection(request, who, body.collection or "")
    return monitor_db(request.app).create_set(body.name, body.collection,
                                              body.description).to_dict()


@router.post("/v1/golden/{set_name}/queries", summary="Add queries to a golden set")
def add_queries(request: Request, set_name: str, body: GoldenQueries, _: Any = WRITE) -> Any:
    """Append queries with their relevant ids (all or none are added)."""
    from embedops.monitor.golden import make_query

    queries = [make_query(q.query, q.relevant, f"query {i}") for i, q in enumerate(body.queries)]
    return {"set": set_name, "n_queries": monitor_db(request.app).add_queries(set_name, queries)}


@router.post("/v1/golden/{set_name}/run", summary="Evaluate a golden set now")
def run_set(
    request: Request, set_name: str,
    collection: Annotated[str, Query(min_length=1, max_length=64)],
    k: Annotated[list[int] | None, Query()] = None,
    mode: Annotated[Literal["dense", "lexical", "hybrid", "two_stage"], Query()] = "dense",
    model_version: Annotated[str | None, Query(max_length=200)] = None,
    _: Any = WRITE,
) -> Any:
    """Search every query of the set in ``collection``, score and store the run."""
    from embedops.monitor.golden import run_golden

    ctx = request.app.state.ctx
    record = run_golden(ctx.api, monitor_db(request.app), collection, set_name, k or [10],
                        mode, model_version, quiet=True)
    return record.to_dict()


@router.get("/v1/golden/{set_name}/runs", summary="History of a golden set's runs")
def list_runs(
    request: Request, set_name: str,
    collection: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    _: Any = READ,
) -> Any:
    """Runs of the set, newest first."""
    runs = monitor_db(request.app).runs(set_name, collection, limit)
    return {"set": set_name, "runs": [r.to_dict() for r in runs]}


@router.post("/v1/collections/{name}/drift", summary="Check a collection for drift")
def drift(request: Request, name: str, body: DriftRequest, _: Any = WRITE) -> Any:
    """Drift of the current window (or texts) against the reference; stored, and exported as
    ``embedops_drift_*`` gauges."""
    from embedops.errors import InvalidInput
    from embedops.monitor.checks import Window, collection_drift
    from embedops.monitor.drift import DriftConfig

    def side(s: DriftSide) -> Any:
        return s.texts if s.texts else Window(s.since, s.until, body.time_field)

    defaults = DriftConfig().__dict__
    given = body.thresholds or {}
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise InvalidInput(f"unknown drift thresholds: {unknown}",
                           f"use some of {', '.join(sorted(defaults))}")
    try:
        config = DriftConfig(**{k: type(defaults[k])(v) for k, v in given.items()})
    except (OverflowError, ValueError) as exc:
        raise InvalidInput(f"drift thresholds must be finite numbers: {exc}") from exc
    ctx = request.app.state.ctx
    for side_in in (body.reference, body.current):
        if side_in.texts:
            check_texts(ctx.settings, side_in.texts, "texts")
    result = collection_drift(ctx.api, name, side(body.reference),
                              side(body.current), config, db=monitor_db(request.app))
    return {"collection": name, "model_version": result.model_version,
            **result.report.to_dict()}
