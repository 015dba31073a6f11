"""Monitoring inside the server: golden sets evaluated and drift checked on a schedule, and the
gauges of the latest golden runs and drift reports at /metrics.

The scheduler is one daemon thread started and stopped with the app's lifespan. Every
``golden_interval_s`` it runs each golden set that names a collection (``golden create NAME
--collection C``) through the same facade search the clients use, and stores the run, so the
history, the CLI and /metrics all see it. Every ``drift_interval_s`` it compares each
collection's items written in the last ``drift_window_s`` with the older ones and stores the
drift report (the ``embedops_drift_*`` gauges the alert rules read). When the retrain policy asks
(``monitor.retrain``), a flagged collection gets a retrain proposal, and with ``auto_train`` its
candidate is made in a background worker process at a lower CPU priority
(``lifecycle.proposals.start_candidate``), never in the server's threads.

Schedules run once per deployment, not once per worker: each worker's thread wakes several
times per interval and runs a job only when ``monitor.leases.Leases.claim`` elects it (one
holder per job, one run per interval, taken over when the holder stops or dies).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from embedops.errors import EmbedopsError, InvalidInput
from embedops.serve.logging import LOGGER

if TYPE_CHECKING:
    from embedops.engine import Embedops
    from embedops.monitor.db import MonitorDB

log = logging.getLogger(LOGGER)
INTERVAL_ENV = "EMBEDOPS_GOLDEN_INTERVAL_S"
DRIFT_INTERVAL_ENV = "EMBEDOPS_DRIFT_INTERVAL_S"
GOLDEN_JOB, DRIFT_JOB = "schedule.golden", "schedule.drift"
_DRIFT_GAUGES = (
    ("detected", "1 when the latest drift check of the collection flagged drift", "drifted"),
    ("mmd_pvalue", "Permutation p-value of the latest MMD test", "mmd_pvalue"),
    ("centroid_shift", "1 - cosine between the window centroids", "centroid_shift"),
    ("component_share", "Share of top PCA components that moved", "component_share"),
    ("norm_psi", "PSI of the vector-norm distribution", "norm_psi"),
)


@dataclass(frozen=True)
class MonitorSettings:
    """``golden_interval_s``: seconds between scheduled golden runs (0 = off); ``ks`` and
    ``mode``: how they search; ``drift_interval_s``: seconds between scheduled drift checks
    (0 = off) of the last ``drift_window_s`` against the items before it. Round-trips
    ``MonitorSettings(**d)``; ``from_env`` reads ``$EMBEDOPS_GOLDEN_INTERVAL_S`` and
    ``$EMBEDOPS_DRIFT_INTERVAL_S``."""

    golden_interval_s: float = 0.0
    ks: tuple[int, ...] = (1, 10)
    mode: str = "dense"
    drift_interval_s: float = 0.0
    drift_window_s: float = 86_400.0

    def __post_init__(self) -> None:
        for name in ("golden_interval_s", "drift_interval_s"):
            if getattr(self, name) < 0:
                raise InvalidInput(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.drift_window_s <= 0:
            raise InvalidInput(f"drift_window_s must be > 0, got {self.drift_window_s}")
        object.__setattr__(self, "ks", tuple(self.ks))

    @classmethod
    def from_env(cls) -> MonitorSettings:
        """Settings from the environment (defaults where unset)."""
        values = {}
        for env, name in ((INTERVAL_ENV, "golden_interval_s"),
                          (DRIFT_INTERVAL_ENV, "drift_interval_s")):
            raw = os.environ.get(env, "0") or "0"
            try:
                values[name] = float(raw)
            except ValueError as exc:
                raise InvalidInput(f"${env} must be a number of seconds, got {raw!r}") from exc
        return cls(golden_interval_s=values["golden_interval_s"],
                   drift_interval_s=values["drift_interval_s"])

    def jobs(self) -> dict[str, float]:
        """The scheduled jobs that are on, with their intervals."""
        return {job: interval for job, interval in ((GOLDEN_JOB, self.golden_interval_s),
                                                    (DRIFT_JOB, self.drift_interval_s))
                if interval > 0}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def run_scheduled(api: Embedops, db: MonitorDB, settings: MonitorSettings) -> int:
    """Run every golden set bound to a collection once; returns how many runs were stored."""
    from embedops.monitor.golden import run_golden

    done = 0
    for golden in db.list_sets():
        if not golden.collection or not golden.n_queries:
            continue
        try:
            run_golden(api, db, golden.collection, golden.name, settings.ks, settings.mode,
                       quiet=True)
            done += 1
        except EmbedopsError as exc:
            log.warning("scheduled golden run failed",
                        extra={"fields": {"set": golden.name, "collection": golden.collection,
                                          "error": exc.to_dict()}})
    return done


def run_drift(api: Embedops, db: MonitorDB, settings: MonitorSettings,
              now: float | None = None) -> int:
    """Check every collection for drift: items written in the last ``drift_window_s`` against
    the older ones; returns how many reports were stored (a collection with too few items on
    either side is skipped)."""
    from embedops.lifecycle.proposals import start_candidate
    from embedops.monitor.checks import Window, collection_drift
    from embedops.monitor.retrain import propose_on_drift

    cut = (time.time() if now is None else now) - settings.drift_window_s
    done = 0
    for info in api.collections.list():
        try:
            result = collection_drift(api, info.name, Window(None, cut), Window(cut, None),
                                      db=db)
            done += 1
            # A retrain proposal when the policy file asks (monitor.retrain; off by default),
            # and its candidate made in a worker process when it says auto_train.
            proposal = propose_on_drift(api.workspace, info.name, result.report.drifted,
                                        result.report.reasons, result.model_version)
            if proposal is not None:
                worker = start_candidate(api.workspace, proposal)
                if worker is not None:
                    log.info("retrain candidate started in a worker process",
                             extra={"fields": {"collection": info.name, "pid": worker.pid,
                                               "proposal": proposal["id"]}})
        except EmbedopsError as exc:
            log.info("scheduled drift check skipped",
                     extra={"fields": {"collection": info.name, "error": exc.code}})
    return done


class GoldenScheduler:
    """A daemon thread that runs the scheduled golden runs and drift checks, each once per
    interval across every worker sharing the workspace (``monitor.leases``), until ``stop``.
    ``runs`` counts the golden runs this worker stored, ``executions`` the jobs it ran."""

    def __init__(self, api_of: Callable[[], Embedops], db: MonitorDB,
                 settings: MonitorSettings, holder: str | None = None) -> None:
        from embedops.monitor.leases import Leases

        self._api_of, self._db, self.settings = api_of, db, settings
        self.leases = Leases(db, holder)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0
        self.executions: dict[str, int] = {}

    def start(self) -> None:
        """Start the thread (no-op when every interval is 0)."""
        if not self.settings.jobs() or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="golden-scheduler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        jobs = self.settings.jobs()
        # Wake several times per interval: a worker that takes over a dead holder's lease
        # then runs within a fraction of an interval of the slot it claims.
        tick = min(max(min(jobs.values()) / 4, 0.05), 30.0)
        while not self._stop.wait(tick):
            for job, interval in jobs.items():
                try:
                    if self.leases.claim(job, interval):
                        self._run(job)
                except Exception:  # the server must outlive a failing check; the log says why
                    log.exception("scheduled job failed", extra={"fields": {"job": job}})

    def _run(self, job: str) -> None:
        self.executions[job] = self.executions.get(job, 0) + 1
        if job == GOLDEN_JOB:
            self.runs += run_scheduled(self._api_of(), self._db, self.settings)
        else:
            run_drift(self._api_of(), self._db, self.settings)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to stop, wait for it, and hand its leases over."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
            for job in self.settings.jobs():
                try:
                    self.leases.release(job)
                except Exception:  # noqa: BLE001 - the lease expires by itself
                    log.warning("could not release a schedule lease",
                                extra={"fields": {"job": job}})


class MonitorCollector:
    """Scrape-time gauges from the monitor database: golden recall/nDCG by collection, set,
    model version and k, and the latest drift signals per collection."""

    def __init__(self, db: Any) -> None:
        self._db = db

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        labels = ["collection", "set", "model_version", "k"]
        recall = GaugeMetricFamily("embedops_golden_recall",
                                   "recall@k of the latest golden run", labels=labels)
        ndcg = GaugeMetricFamily("embedops_golden_ndcg", "nDCG@k of the latest golden run",
                                 labels=labels)
        stamp = GaugeMetricFamily("embedops_golden_last_run_timestamp_seconds",
                                  "When the latest golden run finished",
                                  labels=["collection", "set"])
        for run in self._db.latest_runs():
            for key, value in run.scores.items():
                name, _, k = key.partition("@")
                row = [run.collection, run.set, run.model_version or "", k]
                if name == "recall":
                    recall.add_metric(row, value)
                elif name == "ndcg":
                    ndcg.add_metric(row, value)
            stamp.add_metric([run.collection, run.set], run.created_at)
        yield from (recall, ndcg, stamp)
        yield from self._drift()

    def _drift(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        latest = self._db.latest_drift()
        for suffix, doc, field in _DRIFT_GAUGES:
            gauge = GaugeMetricFamily(f"embedops_drift_{suffix}", doc, labels=["collection"])
            for collection, entry in sorted(latest.items()):
                gauge.add_metric([collection], float(entry["report"].get(field) or 0.0))
            yield gauge
        stamp = GaugeMetricFamily("embedops_drift_last_check_timestamp_seconds",
                                  "When the latest drift check ran", labels=["collection"])
        for collection, entry in sorted(latest.items()):
            stamp.add_metric([collection], entry["created_at"])
        yield stamp
