"""Page 1, the overview: every collection with its items, versions, index, freshness, golden
recall, drift and rollout, the service's error rate and p99, red where an alert would fire."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from embedops.errors import EmbedopsError
from embedops.serve.auth import visible
from embedops.serve.console import charts, figures
from embedops.serve.console.render import page
from embedops.serve.console.session import Viewer
from embedops.serve.rollouts import service_for
from embedops.serve.routes_monitor import monitor_db

router = APIRouter()
TREND_RUNS = 50


def recall_key(scores: dict[str, float]) -> str | None:
    """The recall cut-off the alert rules watch (recall@10), else the first recall@k."""
    if "recall@10" in scores:
        return "recall@10"
    keys = sorted((k for k in scores if k.startswith("recall@")),
                  key=lambda k: int(k.split("@")[1]) if k.split("@")[1].isdigit() else 0)
    return keys[0] if keys else None


def golden_trends(db: Any) -> tuple[dict[str, dict[str, Any]], charts.Series]:
    """Per collection the newest recall and its drop from the last day's best; and the recall
    history of every (set, collection) as chart series."""
    latest: dict[str, dict[str, Any]] = {}
    series: charts.Series = {}
    day_ago = time.time() - 86400
    for golden in db.list_sets():
        runs = db.runs(golden.name, None, TREND_RUNS)[::-1]
        by_collection: dict[str, list[Any]] = {}
        for run in runs:
            by_collection.setdefault(run.collection, []).append(run)
        for collection, items in by_collection.items():
            key = recall_key(items[-1].scores)
            if key is None:
                continue
            points = [(r.created_at, r.scores.get(key)) for r in items]
            series[f"{golden.name} on {collection} ({key})"] = (
                [t for t, _ in points], [v for _, v in points])
            value = items[-1].scores[key]
            recent = [v for t, v in points if t >= day_ago and v is not None]
            drop = (max(recent) - value) if recent else 0.0
            current = latest.get(collection)
            low = key == "recall@10" and value < figures.GOLDEN_RECALL
            if current is None or value < current["value"]:
                latest[collection] = {"set": golden.name, "key": key, "value": value,
                                      "drop": drop, "at": items[-1].created_at,
                                      "alert": low or drop > figures.GOLDEN_DROP}
    return latest, series


def collection_row(request: Request, info: Any, drift: dict[str, Any],
                   golden: dict[str, Any]) -> dict[str, Any]:
    """What the overview shows of one collection, with the alert flags."""
    api = request.app.state.ctx.api
    row: dict[str, Any] = {"info": info, "index": None, "index_error": None}
    try:
        status = api.index_status(info.name)
    except EmbedopsError as exc:
        row["index_error"] = exc.message
        status = {}
    snapshot = status.get("snapshot") or {}
    fresh = status.get("freshness") or {}
    row["kind"] = snapshot.get("kind")
    row["snapshot_age_s"] = fresh.get("snapshot_age_s")
    row["lag_s"] = float(fresh.get("oldest_stale_age_s") or 0.0)
    row["pending"] = int(fresh.get("stale_items") or 0)
    row["lag_alert"] = row["lag_s"] > figures.FRESHNESS_S
    row["pending_alert"] = row["pending"] > figures.PENDING_SHARE * max(info.item_count, 1)
    report = drift.get(info.name)
    row["drift"] = report
    row["drift_alert"] = bool(report and report["report"].get("drifted"))
    row["drift_stale"] = bool(report and time.time() - report["created_at"] >
                              figures.DRIFT_STALE_S)
    row["golden"] = golden.get(info.name)
    state = service_for(request.app).store.get(info.name)
    row["rollout"] = state if state is not None and state.live else None
    return row


def _overview(request: Request, who: Viewer) -> tuple[str, dict[str, Any]]:
    ctx = request.app.state.ctx
    db = monitor_db(request.app)
    golden, series = golden_trends(db)
    drift = db.latest_drift()
    rows = [collection_row(request, info, drift, golden)
            for info in visible(who.principal, ctx.api.collections.list())]
    trend = charts.lines("Golden recall over time", series, "recall", (0, 1),
                         figures.GOLDEN_RECALL) if series else None
    return "overview.html", {"title": "Overview", "rows": rows, "trend": trend,
                             "service": figures.service_figures(ctx.metrics),
                             "limits": figures}


@router.get("/overview", include_in_schema=False)
def overview(request: Request) -> Response:
    """The overview page."""
    return page(request, lambda who: _overview(request, who))
