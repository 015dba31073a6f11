"""The serving side of rollouts: one router, background backfills, and the gate evaluator.

The evaluator thread wakes every ``interval_s``: it writes each live rollout's serving figures
for ``embedops rollout status``, rolls back a canary whose gates broke, and loads the
candidate's model and served index once its backfill is done, so the searches it answers
(shadow, canary, and every search after a promotion) do not pay for loading them.

A service resumes, as it starts, the backfill of every rollout still in its backfill phase:
the server that ran it stopped (a restart). If another process (a CLI ``rollout start``) is
still running that backfill, both embed the missing vectors: the work is idempotent and only
one of them moves the rollout on.
"""

from __future__ import annotations

import logging
import threading
import time

from embedops.engine import Embedops
from embedops.errors import EmbedopsError
from embedops.lifecycle.manager import Rollouts
from embedops.lifecycle.rollout import BACKFILLING, RolloutState, RolloutStore
from embedops.lifecycle.routing import Router

log = logging.getLogger("embedops.lifecycle")
EVALUATE_EVERY_S = 2.0
# A backfill writes its progress at least every few seconds while it runs; one silent for this
# long belonged to a process that stopped (a restarted server, an interrupted CLI).
STALE_BACKFILL_S = 300.0


class RolloutService:
    """Routing, backfill threads and the gate evaluator of one server."""

    def __init__(self, api: Embedops, interval_s: float = EVALUATE_EVERY_S) -> None:
        self.api = api
        self.store = RolloutStore(api.workspace)
        self.router = Router(self.store)
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._backfills: dict[str, threading.Thread] = {}
        self._preloaded: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="rollout-gates", daemon=True)
        self._thread.start()
        self.resume_backfills()

    def resume_backfills(self) -> list[str]:
        """Start the backfill of every live rollout in its backfill phase now; returns their
        collections."""
        pending = [s.collection for s in self.store.live() if s.phase == BACKFILLING]
        for collection in pending:
            log.info("resuming the backfill of %s's rollout", collection)
            self.start_backfill(collection, "server-start")
        return pending

    def manager(self, collection: str, who: str) -> Rollouts:
        """The rollout steps for ``collection``, with live figures and the routing lock."""
        return Rollouts(self.api, who, self.router.stats(collection), self.router.swap)

    def start_backfill(self, collection: str, who: str) -> None:
        """Run (or resume) the backfill of ``collection``'s rollout in a thread."""
        with self._lock:
            running = self._backfills.get(collection)
            if running is not None and running.is_alive():
                return
            thread = threading.Thread(target=self._backfill, args=(collection, who),
                                      name=f"backfill-{collection}", daemon=True)
            self._backfills[collection] = thread
            thread.start()

    def _backfill(self, collection: str, who: str) -> None:
        try:
            self.manager(collection, who).run_backfill(collection, self._stop, quiet=True)
        except Exception:  # noqa: BLE001 - a thread has no caller; the log and status show it
            log.exception("backfill of %s failed; 'rollout start' resumes it", collection)
        finally:
            self.router.invalidate()

    def backfilling(self, collection: str) -> bool:
        with self._lock:
            thread = self._backfills.get(collection)
        return thread is not None and thread.is_alive()

    def evaluate_once(self) -> None:
        """Write figures and roll back broken canaries, for every live rollout; resume a
        backfill that made no progress for ``STALE_BACKFILL_S`` (its process died)."""
        for state in self.store.live():
            if state.phase == BACKFILLING:
                if time.time() - state.updated_at > STALE_BACKFILL_S:
                    self.start_backfill(state.collection, "gate-evaluator")
                continue
            self._preload(state)
            stats = self.router.stats(state.collection)
            self.store.write_stats(state.collection, stats.to_dict())
            self.manager(state.collection, "gate-evaluator").status(state.collection)

    def _preload(self, state: RolloutState) -> None:
        """Load the candidate's encoder and served index here, in the background, once (a
        failure, e.g. an index not built yet, is retried at the next pass)."""
        key = (state.collection, state.candidate)
        if key in self._preloaded:
            return
        try:
            self.api.models.encoder(state.candidate)
            self.api.served_index(state.collection, state.candidate)
        except EmbedopsError as exc:
            log.debug("candidate %s of %s not loaded yet: %s", state.candidate,
                      state.collection, exc.code)
            return
        self._preloaded.add(key)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.evaluate_once()
            except Exception:  # noqa: BLE001 - keep evaluating; the next pass retries
                log.exception("rollout gate evaluation failed")

    def close(self) -> None:
        """Stop the evaluator and ask backfills to stop after their current batch."""
        self._stop.set()
        self.router.close()
