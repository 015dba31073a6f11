"""Per-version serving statistics of a rollout: requests, errors, latency percentiles and
overlap@k of the candidate's results with the active version's.

Kept in memory by the server (a bounded window of recent latencies) and written to
``<workspace>/rollouts/<collection>.stats.json`` so ``embedops rollout status`` in another
process sees the same figures the server's gates saw.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

WINDOW = 5000


@dataclass(frozen=True)
class VersionStats:
    """A summary of one version's traffic (``p50_ms``/``p99_ms`` over the recent window)."""

    version: str
    requests: int = 0
    errors: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    overlap: float | None = None
    overlap_samples: int = 0

    @property
    def error_ratio(self) -> float:
        """Errors per request (0 when no traffic was seen)."""
        return self.errors / self.requests if self.requests else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "error_ratio": round(self.error_ratio, 6)}


def overlap_at_k(a: Sequence[str], b: Sequence[str]) -> float:
    """Share of ids two ranked lists have in common, over the longer one (1.0 when both empty)."""
    size = max(len(a), len(b))
    return len(set(a) & set(b)) / size if size else 1.0


class _Counter:
    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.latencies: deque[float] = deque(maxlen=WINDOW)
        self.overlap_sum = 0.0
        self.overlap_n = 0


class RolloutStats:
    """Thread-safe counters per model version."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_version: dict[str, _Counter] = {}

    def _get(self, version: str) -> _Counter:
        counter = self._by_version.get(version)
        if counter is None:
            counter = self._by_version[version] = _Counter()
        return counter

    def record(self, version: str, seconds: float, error: bool = False) -> None:
        """Count one request served (or failed) by ``version``, taking ``seconds``."""
        with self._lock:
            counter = self._get(version)
            counter.requests += 1
            counter.errors += int(error)
            if not error:
                counter.latencies.append(seconds * 1000.0)

    def record_overlap(self, version: str, value: float) -> None:
        """Add one overlap@k sample of ``version``'s results with the active version's."""
        with self._lock:
            counter = self._get(version)
            counter.overlap_sum += value
            counter.overlap_n += 1

    def reset(self) -> None:
        """Forget everything (a new rollout starts counting from zero)."""
        with self._lock:
            self._by_version.clear()

    def summary(self, version: str) -> VersionStats:
        """The figures of ``version`` (zeros when it saw no traffic)."""
        with self._lock:
            counter = self._by_version.get(version)
            if counter is None:
                return VersionStats(version)
            lat = np.asarray(counter.latencies, dtype=np.float64)
            n = counter.overlap_n
            return VersionStats(
                version, counter.requests, counter.errors,
                round(float(np.percentile(lat, 50)), 3) if lat.size else None,
                round(float(np.percentile(lat, 99)), 3) if lat.size else None,
                round(counter.overlap_sum / n, 4) if n else None, n,
            )

    def to_dict(self) -> dict[str, Any]:
        """Every version's summary, by version."""
        with self._lock:
            versions = list(self._by_version)
        return {v: self.summary(v).to_dict() for v in versions}


def stats_from_dict(data: dict[str, Any], version: str) -> VersionStats:
    """The summary of ``version`` from a dict written by ``RolloutStats.to_dict``."""
    row = dict(data.get(version) or {})
    row.pop("error_ratio", None)
    row["version"] = version
    return VersionStats(**row)
