"""Monitoring inside the server: golden sets evaluated on a schedule, and the gauges of the
latest golden runs and drift reports at /metrics.

The scheduler is one daemon thread started and stopped with the app's lifespan. Every
``golden_interval_s`` it runs each golden set that names a collection (``golden create NAME
--collection C``) through the same facade search the clients use, and stores the run, so the
history, the CLI and /metrics all see it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
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
    ``mode``: how they search. Round-trips ``MonitorSettings(**d)``; ``from_env`` reads
    ``$EMBEDOPS_GOLDEN_INTERVAL_S``."""

    golden_interval_s: float = 0.0
    ks: tuple[int, ...] = (1, 10)
    mode: str = "dense"

    def __post_init__(self) -> None:
        if self.golden_interval_s < 0:
            raise InvalidInput(f"golden_interval_s must be >= 0, got {self.golden_interval_s}")
        object.__setattr__(self, "ks", tuple(self.ks))

    @classmethod
    def from_env(cls) -> MonitorSettings:
        """Settings from the environment (defaults where unset)."""
        raw = os.environ.get(INTERVAL_ENV, "0") or "0"
        try:
            return cls(golden_interval_s=float(raw))
        except ValueError as exc:
            raise InvalidInput(f"${INTERVAL_ENV} must be a number of seconds, got {raw!r}") \
                from exc

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


class GoldenScheduler:
    """A daemon thread that calls ``run_scheduled`` every interval until ``stop``."""

    def __init__(self, api_of: Callable[[], Embedops], db: MonitorDB,
                 settings: MonitorSettings) -> None:
        self._api_of, self._db, self.settings = api_of, db, settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0

    def start(self) -> None:
        """Start the thread (no-op when the interval is 0)."""
        if self.settings.golden_interval_s <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="golden-scheduler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.golden_interval_s):
            try:
                self.runs += run_scheduled(self._api_of(), self._db, self.settings)
            except Exception:  # the server must outlive a failing check; the log says why
                log.exception("scheduled golden runs failed")

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to stop and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


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
