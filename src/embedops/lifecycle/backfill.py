"""Backfill: embed every item that lacks a vector of the candidate version, rate-limited.

Resumable by construction: the work list is always the catalog's ``missing_vectors``, so a
restart after a crash or Ctrl-C continues where the last committed batch ended. A token bucket
caps items per second so a backfill next to a serving process leaves it CPU for its p99.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from embedops.errors import InvalidInput
from embedops.progress import progress_bar


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up (``rate`` None: unlimited)."""

    def __init__(self, rate: float | None, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate is not None and rate <= 0:
            raise InvalidInput(f"the backfill rate must be positive, got {rate}",
                               "write e.g. --rate 200/s, or leave it out for no limit")
        self.rate = rate
        self.burst = float(burst if burst is not None else (rate or 0.0))
        self._clock, self._sleep = clock, sleep
        self._tokens = self.burst
        self._last = clock()

    def take(self, n: int) -> float:
        """Wait until ``n`` tokens are available and spend them; returns seconds waited.
        ``n`` above the burst is allowed: the debt is paid by waiting."""
        if self.rate is None:
            return 0.0
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= n
        if self._tokens >= 0:
            return 0.0
        wait = -self._tokens / self.rate
        self._sleep(wait)
        return wait


def parse_rate(text: str | float | None) -> float | None:
    """``"200/s"``, ``"200"`` or ``200`` → 200.0 items per second; None or ``""`` → None."""
    if text is None or text == "":
        return None
    raw = str(text).strip().lower()
    for suffix in ("/s", "/sec", "/second"):
        if raw.endswith(suffix):
            raw = raw[: -len(suffix)]
            break
    try:
        rate = float(raw)
    except ValueError:
        raise InvalidInput(f"cannot read the rate {text!r}",
                           "write items per second, e.g. 200/s") from None
    if not rate > 0:
        raise InvalidInput(f"the rate must be positive, got {text!r}", "write e.g. 200/s")
    return rate


def backfill(
    api: Any,
    collection: str,
    version: str,
    rate: float | None = None,
    batch: int = 256,
    on_progress: Callable[[int, int], None] | None = None,
    stop: threading.Event | None = None,
    quiet: bool | None = None,
) -> tuple[int, int]:
    """Embed the items of ``collection`` lacking a ``version`` vector; ``(done, total)``.

    ``total`` counts every live item; ``done`` those with a vector when the call returns (less
    than ``total`` only when ``stop`` was set). ``on_progress(done, total)`` follows each batch.
    """
    bucket = TokenBucket(rate, burst=max(rate or 0, 1))
    size = max(1, min(batch, int(rate) if rate else batch))
    total = int(api.catalog.get_collection(collection).item_count)
    missing = api.catalog.missing_vectors(collection, version)
    done = total - len(missing)
    with progress_bar(f"backfill {collection} → {version}", total=total, unit="items",
                      quiet=quiet) as task:
        task.advance(done)
        while missing and not (stop and stop.is_set()):
            for start in range(0, len(missing), size):
                if stop and stop.is_set():
                    break
                chunk = missing[start:start + size]
                bucket.take(len(chunk))
                items = api.catalog.get_items(collection, chunk)
                if items:
                    vectors = api.models.embed([it.text for it in items], version)
                    api.catalog.put_vectors(collection, version, [it.id for it in items], vectors)
                done += len(chunk)
                task.advance(len(chunk))
                if on_progress:
                    on_progress(done, total)
            # Items written while this pass ran without a candidate vector (an upsert that
            # started before the rollout did) are picked up by the next pass.
            missing = api.catalog.missing_vectors(collection, version)
            total = int(api.catalog.get_collection(collection).item_count)
            done = total - len(missing)
    return done, total
