"""Start-up warm-up, the consistency schedule, and the index figures that /metrics reports.

Warm-up loads (and so verifies) every collection's served index and runs one query against it,
so the first real request finds the model loaded and the index in memory. What a load did that
an operator must know is logged as a warning, one JSON line per collection: snapshots moved to
quarantine, an index rebuilt from the catalog (no good snapshot, an encrypted collection kept in
memory, a divergence from the catalog repaired). It is also in ``/readyz`` under
``collections.<name>``.

After warm-up a daemon thread compares every loaded index with the catalog each
``$EMBEDOPS_CONSISTENCY_INTERVAL_S`` seconds (default 300, 0 = off) and rebuilds one that
diverges (``Embedops.check_index(repair=True)``).
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from typing import Any

from embedops.errors import EmbedopsError, IntegrityError
from embedops.serve.logging import LOGGER

log = logging.getLogger(LOGGER)
WARMUP_QUERY = "warm up"
CONSISTENCY_ENV = "EMBEDOPS_CONSISTENCY_INTERVAL_S"
CONSISTENCY_EVERY_S = 300.0


def _warm_one(ctx: Any, name: str) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        result = ctx.api.search(name, WARMUP_QUERY, k=1, mode="dense")
    except IntegrityError as exc:
        return {"state": "error", "error": exc.to_dict()}
    except EmbedopsError as exc:
        # A collection with no index yet (or nothing in it) is not a failed start-up: its
        # dense searches answer 503 until an index is built; the others are served.
        return {"state": "not_served", "error": exc.to_dict()}
    try:  # builds the BM25 view, so the first lexical or hybrid query is not the slow one
        ctx.api.search(name, WARMUP_QUERY, k=1, mode="lexical")
    except EmbedopsError as exc:
        log.warning("lexical warm-up failed", extra={"fields": {"collection": name,
                                                                 **exc.to_dict()}})
    ms = round((time.perf_counter() - started) * 1000, 1)
    out = {"state": "ready", "model_version": result.model_version, "warmup_ms": ms}
    return {**out, **_load_facts(ctx, name, result.model_version)}


def _load_facts(ctx: Any, name: str, version: str) -> dict[str, Any]:
    """What loading the index did (quarantine, rebuild) and its consistency with the catalog."""
    try:
        status = ctx.api.index_status(name, version)
    except EmbedopsError:
        return {}
    out: dict[str, Any] = {}
    load = status.get("load") or {}
    if load.get("quarantined") or load.get("rebuilt"):
        out["load"] = {"quarantined": list(load.get("quarantined") or []),
                       "rebuilt": load.get("rebuilt")}
    if status.get("consistency"):
        out["consistency"] = consistency_summary(status["consistency"])
    return out


def consistency_summary(check: dict[str, Any]) -> dict[str, Any]:
    """The parts of a consistency check that readiness and the log show (counts, no ids)."""
    keys = ("state", "index_only", "catalog_only", "snapshot", "checked_at", "repaired")
    return {k: check.get(k) for k in keys if check.get(k) is not None}


def _log_warm(name: str, entry: dict[str, Any]) -> None:
    fields = {"collection": name, **entry}
    load, check = entry.get("load") or {}, entry.get("consistency") or {}
    if load.get("quarantined"):
        log.warning("index snapshot(s) quarantined at start", extra={"fields": fields})
    elif load.get("rebuilt") or check.get("repaired") or entry["state"] == "error":
        log.warning("index not served as it was on disk", extra={"fields": fields})
    else:
        log.info("warm-up", extra={"fields": fields})


def warm_up(ctx: Any) -> None:
    """Warm every collection; mark the context ready unless an index failed verification."""
    try:
        names = [c.name for c in ctx.api.collections.list()]
    except Exception:  # the service stays up and /readyz says why
        log.exception("warm-up could not list collections")
        ctx.warmup = {"_": {"state": "error", "error": {"code": "warmup_failed"}}}
        return
    for name in names:
        ctx.warmup[name] = {"state": "loading"}
        ctx.warmup[name] = _warm_one(ctx, name)
        _log_warm(name, ctx.warmup[name])
    # What warm-up loaded (index, keys, BM25 view, model) lives as long as the process. A full
    # garbage collection walks every tracked object: 18-47 ms with the 20k-document revdict
    # collection loaded, a latency spike for whatever request it lands in. Frozen objects are
    # never walked again (0.0 ms after the freeze); what later requests allocate is still
    # collected as usual.
    gc.collect()
    gc.freeze()
    ctx.ready = all(w["state"] != "error" for w in ctx.warmup.values())
    every = consistency_interval()
    if every > 0:
        threading.Thread(target=_consistency_loop, args=(ctx, every), name="consistency",
                         daemon=True).start()


def consistency_interval() -> float:
    """Seconds between consistency checks (``$EMBEDOPS_CONSISTENCY_INTERVAL_S``; 0 = off)."""
    try:
        return max(0.0, float(os.environ.get(CONSISTENCY_ENV, CONSISTENCY_EVERY_S)))
    except ValueError:
        return CONSISTENCY_EVERY_S


def check_consistency(ctx: Any) -> None:
    """Compare every served index with the catalog, rebuild those that diverge, and record
    the outcome where ``/readyz`` shows it (a repair is logged as a warning)."""
    for name, entry in list(ctx.warmup.items()):
        if entry.get("state") != "ready":
            continue
        try:
            check = ctx.api.check_index(name, repair=True)
        except EmbedopsError as exc:
            log.warning("consistency check failed", extra={"fields": {"collection": name,
                                                                       **exc.to_dict()}})
            continue
        if check is None:
            continue
        summary = consistency_summary(check)
        previous = (entry.get("consistency") or {}).get("repaired")
        ctx.warmup[name] = {**entry, "consistency": summary}
        if summary.get("repaired") and summary.get("repaired") != previous:
            log.warning("index rebuilt: it diverged from the catalog",
                        extra={"fields": {"collection": name, **summary}})


def _consistency_loop(ctx: Any, every: float) -> None:
    while True:
        time.sleep(every)
        try:
            check_consistency(ctx)
        except Exception:  # noqa: BLE001 - a daemon thread has no caller; the next pass retries
            log.exception("consistency check failed")


def resume_rollouts(app: Any) -> None:
    """Resume at once the backfill of every rollout left in its backfill phase (a server that
    stopped mid-backfill); without one nothing is started."""
    from embedops.lifecycle.rollout import BACKFILLING, RolloutStore

    try:
        pending = [s for s in RolloutStore(app.state.ctx.workspace).live()
                   if s.phase == BACKFILLING]
    except EmbedopsError as exc:
        log.warning("cannot read rollouts at start", extra={"fields": exc.to_dict()})
        return
    if pending:
        from embedops.serve.rollouts import service_for

        service_for(app)  # its start resumes every pending backfill
        log.info("resuming rollout backfills",
                 extra={"fields": {"collections": [s.collection for s in pending]}})


def index_stats(ctx: Any) -> dict[str, dict[str, Any]]:
    """{collection: {items, pending, freshness_age_s, consistent, index_only, catalog_only}} of
    every collection (at scrape time; consistency as last checked)."""
    out: dict[str, dict[str, Any]] = {}
    try:
        names = [c.name for c in ctx.api.collections.list()]
    except EmbedopsError:
        return out
    for name in names:
        try:
            status = ctx.api.index_status(name)
        except EmbedopsError:
            continue
        fresh = status.get("freshness") or {}
        served = status.get("served") or {}
        snapshot = status.get("snapshot") or {}
        out[name] = {
            "items": served.get("count", snapshot.get("item_count", 0)) or 0,
            "pending": fresh.get("stale_items", 0) or 0,
            "freshness_age_s": fresh.get("oldest_stale_age_s", 0.0) or 0.0,
        }
        if served.get("memory_bytes") is not None:
            out[name]["memory_bytes"] = served["memory_bytes"]
        check = status.get("consistency")
        if check:
            out[name].update(consistent=check.get("state") == "consistent",
                             index_only=check.get("index_only", 0),
                             catalog_only=check.get("catalog_only", 0))
    return out
