"""User feedback on search results over HTTP (``monitor.feedback``), and its gauges.

``POST /v1/collections/{name}/feedback`` (write role) records what users did with the hits of
a search answer (its ``query_id``): clicks, dwell seconds, thumbs, grades. Events are
idempotent per ``event_id``: a retried post is answered 200 with the repeats counted as
``duplicates``. The per-key rate limit of the service applies (``serve.ratelimit``).
``GET /v1/collections/{name}/feedback`` (read role) answers events and click-through per model
version. ``/metrics`` gains ``embedops_feedback_events_total`` (by collection, model version
and kind) and ``embedops_feedback_ctr`` (by collection and model version), read from
``monitor.db`` at scrape time, so every worker reports the same figures; and, from the
workspace's files, ``embedops_retrain_proposals`` (by collection and status) and
``embedops_migration_step`` / ``embedops_migration_updated_timestamp_seconds`` (each
collection's last migration).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field

from embedops.serve.auth import READ, WRITE
from embedops.serve.openapi import AUTH, BODY, errors
from embedops.serve.routes_monitor import monitor_db

_LOCK = threading.Lock()


class FeedbackEventIn(BaseModel):
    """One user action on a hit of the answer ``query_id`` (see ``monitor.feedback``)."""

    model_config = ConfigDict(extra="forbid")
    event_id: str = Field(min_length=1, max_length=256,
                          description="Client-chosen id; a repeat is counted once.")
    query_id: str = Field(min_length=1, max_length=256,
                          description="The search answer's query_id.")
    kind: Literal["click", "dwell", "thumbs", "grade"]
    item_id: str = Field(min_length=1, max_length=256, description="The hit acted on.")
    value: float | None = Field(None, description="dwell: seconds; thumbs: 1 or -1; "
                                "grade: 0-3; click: none (or 1, 0 for an explicit non-click).")
    shown: list[str] = Field(default_factory=list, max_length=1000,
                             description="Hit ids as displayed, best first (hard negatives).")
    query: str | None = Field(None, max_length=10_000, description="Query text; stored only "
                              "if the collection allows it, redacted and sealed.")
    model_version: str | None = Field(None, max_length=200,
                                      description="The answer's model_version.")


class FeedbackBody(BaseModel):
    """A batch of feedback events (stored in one transaction: all or none)."""

    model_config = ConfigDict(extra="forbid")
    events: list[FeedbackEventIn] = Field(min_length=1, max_length=1000)


class FeedbackCollector:
    """Scrape-time feedback metrics from ``monitor.db``: event counts (a counter: events are
    never deleted) and the click-through rate per collection and model version."""

    def __init__(self, db: Any) -> None:
        self._db = db

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        from embedops.monitor.feedback import event_counts, figures

        events = CounterMetricFamily("embedops_feedback_events", "Feedback events recorded",
                                     labels=["collection", "model_version", "kind"])
        for collection, version, kind, count in event_counts(self._db):
            events.add_metric([collection, version, kind], float(count))
        ctr = GaugeMetricFamily("embedops_feedback_ctr", "Answers with a click / answers with "
                                "any feedback", labels=["collection", "model_version"])
        for row in figures(self._db):
            ctr.add_metric([row["collection"], row["model_version"] or ""], float(row["ctr"]))
        yield from (events, ctr, *self._loop())

    def _loop(self) -> Iterator[Any]:
        """Retrain proposals by status, and each collection's last migration (its step)."""
        from prometheus_client.core import GaugeMetricFamily

        from embedops.lifecycle.migrate import migration_states
        from embedops.monitor.retrain import proposal_counts

        workspace = self._db.workspace
        proposals = GaugeMetricFamily("embedops_retrain_proposals", "Retrain proposals by "
                                      "status", labels=["collection", "status"])
        for collection, status, count in proposal_counts(workspace):
            proposals.add_metric([collection, status], float(count))
        step = GaugeMetricFamily("embedops_migration_step", "1 for the step each "
                                 "collection's last migration reached (done, rolled_back or "
                                 "the last step done)",
                                 labels=["collection", "source", "target", "step"])
        updated = GaugeMetricFamily("embedops_migration_updated_timestamp_seconds", "When "
                                    "the last migration of the collection moved",
                                    labels=["collection"])
        for state in migration_states(workspace.rollouts_dir):
            step.add_metric([state["collection"], state["source"], state["target"],
                             state["step"]], 1.0)
            updated.add_metric([state["collection"]], float(state.get("updated_at") or 0.0))
        yield from (proposals, step, updated)


def register_collector(app: Any) -> None:
    """Add the feedback gauges to the app's metrics registry (once)."""
    with _LOCK:
        if getattr(app.state, "feedback_collector", None) is None:
            collector = FeedbackCollector(monitor_db(app))
            app.state.ctx.metrics.registry.register(collector)
            app.state.feedback_collector = collector


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    register_collector(app)
    yield


router = APIRouter(prefix="/v1/collections/{name}/feedback", tags=["monitor"],
                   lifespan=lifespan, responses=errors(*AUTH, *BODY, 404))


def _feedback(request: Request) -> Any:
    from embedops.monitor.feedback import Feedback

    return Feedback(request.app.state.ctx.api, monitor_db(request.app))


@router.post("", summary="Record feedback on search results")
def record(request: Request, name: str, body: FeedbackBody, _: Any = WRITE) -> Any:
    """Store the events (idempotent per ``event_id``); answers ``received``, ``written`` and
    ``duplicates``. A bad value for its kind is refused with 422 and nothing is stored."""
    from embedops.monitor.feedback import FeedbackEvent

    events = [FeedbackEvent(e.event_id, e.query_id, e.kind, e.item_id, e.value,
                            tuple(e.shown), e.query, e.model_version) for e in body.events]
    return {"collection": name, **_feedback(request).record(name, events)}


@router.get("", summary="Feedback figures")
def show(request: Request, name: str, _: Any = READ) -> Any:
    """Events, answers with feedback, clicked answers and click-through rate per model
    version of the collection."""
    request.app.state.ctx.api.collections.info(name)
    return {"collection": name, "versions": _feedback(request).figures(name)}
