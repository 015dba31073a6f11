"""The service's own figures for the overview (error rate and p99 since start, from the app's
Prometheus metrics) and the thresholds at which the shipped alert rules fire.

The thresholds are those of ``deploy/prometheus-alerts.yml``; the overview paints a figure red
where that rule would fire on the figure shown (the rules look at rates over windows; the
overview has the totals since the process started and the latest stored checks).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: EmbedopsErrorBudgetFastBurn: 5xx ratio over 14.4x the 0.1 % budget.
ERROR_RATIO = 14.4 * 0.001
#: The latency SLO: 99 % of requests within 250 ms.
P99_S = 0.25
#: EmbedopsGoldenRecallLow: recall@10 under 0.6.
GOLDEN_RECALL = 0.6
#: EmbedopsGoldenRecallDrop: recall@10 down by more than 0.05 from the day's best.
GOLDEN_DROP = 0.05
#: EmbedopsIndexStale: changes older than an hour not in the index.
FRESHNESS_S = 3600.0
#: EmbedopsIndexPendingHigh: over 20 % of the collection served from the overlay.
PENDING_SHARE = 0.2
#: EmbedopsDriftCheckStale: no drift check for two days.
DRIFT_STALE_S = 2 * 86400.0


@dataclass(frozen=True)
class ServiceFigures:
    """Requests, 5xx and 4xx answers and the p99 latency since the process started."""

    requests: int
    server_errors: int
    client_errors: int
    p99_s: float | None

    @property
    def error_ratio(self) -> float:
        return self.server_errors / self.requests if self.requests else 0.0

    @property
    def error_alert(self) -> bool:
        return self.error_ratio > ERROR_RATIO

    @property
    def latency_alert(self) -> bool:
        return self.p99_s is not None and self.p99_s > P99_S


def _samples(metric: Any) -> Iterable[Any]:
    for family in metric.collect():
        yield from family.samples


def quantile(buckets: dict[float, float], q: float) -> float | None:
    """The ``q`` quantile of a cumulative histogram ``{upper bound: count}``, interpolated
    linearly inside its bucket (what PromQL's ``histogram_quantile`` does)."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    total = buckets[bounds[-1]]
    rank, low, below = q * total, 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return low
            share = (rank - below) / (count - below) if count > below else 1.0
            return low + (bound - low) * share
        low, below = bound, count
    return low


def service_figures(metrics: Any) -> ServiceFigures:
    """Requests, errors and p99 of every route from the app's ``Metrics``."""
    buckets: dict[float, float] = {}
    requests = 0.0
    for sample in _samples(metrics.request_seconds):
        if sample.name.endswith("_bucket"):
            bound = float(sample.labels["le"])
            buckets[bound] = buckets.get(bound, 0.0) + sample.value
        elif sample.name.endswith("_count"):
            requests += sample.value
    server = client = 0.0
    for sample in _samples(metrics.errors):
        if not sample.name.endswith("_total"):
            continue
        status = str(sample.labels.get("status", ""))
        if status.startswith("5"):
            server += sample.value
        elif status.startswith("4"):
            client += sample.value
    return ServiceFigures(int(requests), int(server), int(client), quantile(buckets, 0.99))
