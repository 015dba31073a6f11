"""Search routing during a rollout: canary share, stickiness, forced versions, shadow mode.

A canary sends a fixed share of callers to the candidate; the share is sticky: a caller (its
API key id, else its address) hashes to the same side for the whole rollout. The header
``X-Embedops-Version: candidate | active | name@N`` forces a side. In shadow mode every search
is answered by the active version while the candidate runs the same query off the request
path, and only its figures are kept. Every search holds the read side of a lock whose write side
a promotion or rollback takes, so no request sees half a switch.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from embedops.errors import EmbedopsError, InvalidInput, VersionMismatch
from embedops.lifecycle.rollout import CANARY, PROMOTED, SHADOW, RolloutState, RolloutStore
from embedops.lifecycle.stats import RolloutStats, overlap_at_k

HEADER = "X-Embedops-Version"
RECHECK_S = 0.5
MAX_BACKGROUND = 8


class RWLock:
    """Many readers or one writer; a waiting writer holds new readers back (no starvation)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


def bucket(collection: str, candidate: str, caller: str) -> float:
    """A caller's stable position in [0, 1) for one rollout."""
    digest = hashlib.sha256(f"{collection}\0{candidate}\0{caller}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class Choice:
    """Which version answers (None: the collection's active one) and which runs in shadow."""

    version: str | None
    shadow: str | None = None
    compare_with: str | None = None


def choose(state: RolloutState | None, caller: str, forced: str | None, pinned: str | None
           ) -> Choice:
    """The routing decision for one search (``forced`` is the header, ``pinned`` the body's
    ``model_version``)."""
    if forced and pinned:
        raise InvalidInput(f"both the {HEADER} header ({forced}) and model_version ({pinned}) "
                           "are set", "pin the version one way only")
    live = state is not None and state.phase in (CANARY, SHADOW, PROMOTED)
    if forced:
        word = forced.strip().lower()
        if word == "active":
            return Choice(None)
        if word == "candidate":
            if not live or state is None:
                raise VersionMismatch("this collection has no rollout candidate being served",
                                      f"drop the {HEADER} header, or start a rollout")
            return Choice(state.candidate if state.phase != PROMOTED else state.previous)
        return Choice(forced.strip())
    if pinned or not live or state is None:
        return Choice(pinned)
    if state.phase == SHADOW:
        return Choice(None, shadow=state.candidate)
    if state.phase == CANARY and bucket(state.collection, state.candidate, caller) < state.share:
        return Choice(state.candidate, compare_with=state.previous)
    return Choice(None)


class Router:
    """Routes searches of one server and records per-version figures."""

    def __init__(self, store: RolloutStore) -> None:
        self.store = store
        self.lock = RWLock()
        self._stats: dict[str, RolloutStats] = {}
        self._cache: dict[str, tuple[float, RolloutState | None]] = {}
        self._epochs: dict[str, float] = {}
        self._guard = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rollout-shadow")
        self._pending = 0

    def stats(self, collection: str) -> RolloutStats:
        with self._guard:
            return self._stats.setdefault(collection, RolloutStats())

    def state(self, collection: str) -> RolloutState | None:
        """The collection's live rollout, re-read from disk at most every ``RECHECK_S``."""
        now = time.monotonic()
        with self._guard:
            cached = self._cache.get(collection)
        if cached is not None and now - cached[0] < RECHECK_S:
            return cached[1]
        try:
            state = self.store.get(collection)
        except InvalidInput:
            state = None
        state = state if state is not None and state.live else None
        with self._guard:
            self._cache[collection] = (now, state)
            # A rollout started elsewhere (the CLI) counts from zero here too.
            epoch = state.started_at if state is not None else None
            if epoch is not None and self._epochs.get(collection, epoch) != epoch:
                self._stats.pop(collection, None)
            if epoch is not None:
                self._epochs[collection] = epoch
        return state

    def invalidate(self) -> None:
        with self._guard:
            self._cache.clear()

    def swap(self, fn: Callable[[], Any]) -> Any:
        """Run a version switch with every search held back, then drop cached states."""
        with self.lock.write():
            try:
                return fn()
            finally:
                self.invalidate()

    def search(self, collection: str, caller: str, forced: str | None, pinned: str | None,
               run: Callable[[str | None], Any]) -> Any:
        """Answer one search through ``run(version)``, routed and measured."""
        with self.lock.read():
            state = self.state(collection)
            choice = choose(state, caller, forced, pinned)
            result = self._timed(collection, choice.version, run)
        if state is not None and result.model_version is not None:
            ids = [hit.id for hit in result.hits]
            if choice.shadow:
                self._background(collection, choice.shadow, ids, run, timed=True)
            elif choice.compare_with:
                self._background(collection, choice.compare_with, ids, run, timed=False,
                                 overlap_for=result.model_version)
        return result

    def _timed(self, collection: str, version: str | None, run: Callable[[str | None], Any]
               ) -> Any:
        stats = self.stats(collection)
        started = time.perf_counter()
        try:
            result = run(version)
        except EmbedopsError as exc:
            if exc.http_status >= 500 and version:
                stats.record(version, time.perf_counter() - started, error=True)
            raise
        except Exception:
            if version:
                stats.record(version, time.perf_counter() - started, error=True)
            raise
        if result.model_version is not None:
            stats.record(result.model_version, time.perf_counter() - started)
        return result

    def _background(self, collection: str, version: str, ids: list[str],
                    run: Callable[[str | None], Any], timed: bool,
                    overlap_for: str | None = None) -> None:
        """Run ``version`` off the request path (dropped when the queue is full)."""
        with self._guard:
            if self._pending >= MAX_BACKGROUND:
                return
            self._pending += 1

        def job() -> None:
            try:
                other = self._timed(collection, version, run) if timed else run(version)
                other_ids = [hit.id for hit in other.hits]
                self.stats(collection).record_overlap(overlap_for or version,
                                                      overlap_at_k(ids, other_ids))
            except Exception:  # noqa: BLE001 - a shadow failure is counted, never raised
                pass
            finally:
                with self._guard:
                    self._pending -= 1

        self._pool.submit(job)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
