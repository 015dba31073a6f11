"""Pages 5 and 6: quality (golden sets, their run history per version as charts, and the
recall lost per layer) and drift (the latest report with its thresholds, and its history)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from embedops.errors import EmbedopsError, NotFound
from embedops.serve.auth import visible
from embedops.serve.console import charts
from embedops.serve.console.forms import Form
from embedops.serve.console.render import page
from embedops.serve.console.session import Viewer
from embedops.serve.routes_monitor import monitor_db

router = APIRouter()
HISTORY = 500
FAMILIES = ("recall", "mrr", "ndcg")
#: Drift signals shown and charted: (report field, where its threshold is, threshold key, rule).
#: The thresholds in effect are the report's own (``psi_threshold`` is the configured PSI or
#: its sampling-noise floor); the verdict and its reasons are the report's, never recomputed.
SIGNALS = (("centroid_shift", "config", "centroid_shift", ">"),
           ("mmd_pvalue", "config", "mmd_pvalue", "<"),
           ("component_share", "config", "component_share", ">"),
           ("norm_psi", "report", "psi_threshold", ">"),
           ("oov_shift", "config", "oov_shift", "|>|"))


def metric_keys(runs: list[Any]) -> list[str]:
    """The recall@k, mrr@k and ndcg@k keys the runs hold, grouped by family then k."""
    keys = {k for run in runs for k in run.scores if k.split("@")[0] in FAMILIES}

    def order(key: str) -> tuple[int, int]:
        family, _, cut = key.partition("@")
        return FAMILIES.index(family), int(cut) if cut.isdigit() else 0
    return sorted(keys, key=order)


def quality_charts(runs: list[Any]) -> list[dict[str, Any]]:
    """One chart per metric key: a line per (model version, collection), over time."""
    out = []
    for key in metric_keys(runs):
        series: charts.Series = {}
        for run in sorted(runs, key=lambda r: r.created_at):
            name = f"{run.model_version or 'lexical'} on {run.collection}"
            xs, ys = series.setdefault(name, ([], []))
            xs.append(run.created_at)
            ys.append(run.scores.get(key))
        out.append({"key": key, "figure": charts.lines(key, series, key, (0, 1), height=300)})
    return out


def _quality(request: Request, who: Viewer, form: Form) -> tuple[str, dict[str, Any]]:
    db = monitor_db(request.app)
    sets = db.list_sets()
    context: dict[str, Any] = {"title": "Quality", "sets": sets, "values": dict(form.values()),
                               "charts": [], "runs": [], "error": None, "plots": True,
                               "golden": None}
    try:
        name = form.text("set", sets[0].name if sets else "", max_chars=64)
        if not name:
            return "quality.html", context
        golden = db.get_set(name)
        collection = form.text("collection", max_chars=64) or None
        runs = db.runs(name, collection, HISTORY)
        context.update(golden=golden, runs=runs[:25], charts=quality_charts(runs),
                       collection=collection or golden.collection or
                       (runs[0].collection if runs else ""))
    except EmbedopsError as exc:
        context["error"] = exc
    return "quality.html", context


def _layers(request: Request, form: Form) -> tuple[str, dict[str, Any]]:
    from embedops.monitor.layers import recall_by_layer

    context: dict[str, Any] = {"error": None, "report": None}
    try:
        name = form.text("set", required=True, label="golden set", max_chars=64)
        collection = form.text("collection", required=True, label="collection", max_chars=64)
        k = form.integer("k", 10, 1, 1000) or 10
        report = recall_by_layer(request.app.state.ctx.api, monitor_db(request.app),
                                 collection, name, k)
        stages = report.to_dict()["stages"]
        context.update(report=report.to_dict(), figure=charts.bars(
            f"recall@{k} by stage", list(stages), list(stages.values()), "recall"))
    except EmbedopsError as exc:
        context["error"] = exc
    return "layers.html", context


def drift_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each signal of a stored drift report with the threshold it was judged against."""
    config = report.get("config") or {}
    rows = []
    for field, where, key, rule in SIGNALS:
        if report.get(field) is None:
            continue
        threshold = (report if where == "report" else config).get(key)
        rows.append({"name": field, "value": report[field], "threshold": threshold,
                     "rule": rule})
    return rows


def drift_charts(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A chart per signal over time, with its threshold of the newest report."""
    if not history:
        return []
    newest = drift_rows(history[-1]["report"])
    out = []
    for row in newest:
        xs = [h["created_at"] for h in history]
        ys = [h["report"].get(row["name"]) for h in history]
        out.append(charts.lines(row["name"], {row["name"]: (xs, ys)}, row["name"],
                                threshold=row["threshold"], height=260))
    return out


def _drift(request: Request, who: Viewer, form: Form) -> tuple[str, dict[str, Any]]:
    db = monitor_db(request.app)
    collections = visible(who.principal, request.app.state.ctx.api.collections.list())
    checked = db.latest_drift()
    default = next((c.name for c in collections if c.name in checked),
                   collections[0].name if collections else "")
    context: dict[str, Any] = {"title": "Drift", "collections": collections, "checked": checked,
                               "values": dict(form.values()), "error": None, "plots": True,
                               "latest": None, "history": [], "charts": []}
    try:
        name = form.text("collection", default, max_chars=64)
        if name and name not in {c.name for c in collections}:
            raise NotFound(f"no collection named '{name}'")
        history = db.drift_history(name, HISTORY) if name else []
        latest = history[-1] if history else None
        context.update(collection=name, history=history[::-1][:25], latest=latest,
                       rows=drift_rows(latest["report"]) if latest else [],
                       charts=drift_charts(history))
    except EmbedopsError as exc:
        context["error"] = exc
    return "drift.html", context


@router.get("/quality", include_in_schema=False)
def quality(request: Request) -> Response:
    """Golden sets and the history of one set's runs."""
    form = Form.of_query(request)
    return page(request, lambda who: _quality(request, who, form))


@router.get("/quality/layers", include_in_schema=False)
def layers(request: Request) -> Response:
    """Recall lost per layer (model, quantisation, ANN) of one set on one collection."""
    form = Form.of_query(request)
    return page(request, lambda who: _layers(request, form))


@router.get("/drift", include_in_schema=False)
def drift(request: Request) -> Response:
    """The drift report of a collection and its history."""
    form = Form.of_query(request)
    return page(request, lambda who: _drift(request, who, form))
