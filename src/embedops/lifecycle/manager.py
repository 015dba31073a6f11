"""Rollout steps over the facade: start, backfill, status, promote, roll back, abort, finish.

Every transition is written to the rollout state file and to the audit log. Catalog changes
that switch versions are one transaction (``Catalog.switch_versions``), run through ``swap``:
the server passes a function that holds its routing lock, so no request sees half a switch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from embedops.engine import Embedops
from embedops.engine.audit import record
from embedops.errors import InvalidInput
from embedops.lifecycle.gates import GateConfig, GateReport, evaluate_gates
from embedops.lifecycle.rollout import (
    ABORTED,
    BACKFILLING,
    CANARY,
    FINISHED,
    PROMOTED,
    ROLLED_BACK,
    SHADOW,
    GateFailed,
    RolloutConflict,
    RolloutState,
    RolloutStore,
)
from embedops.lifecycle.stats import RolloutStats, stats_from_dict

Swap = Callable[[Callable[[], Any]], Any]
PROGRESS_EVERY_S = 1.0
_ACTIONS = {ROLLED_BACK: "rollback", ABORTED: "abort", FINISHED: "finish"}


def _direct(fn: Callable[[], Any]) -> Any:
    return fn()


class Rollouts:
    """The rollout steps of one workspace. ``who`` names the actor in the audit log;
    ``stats`` are the server's live figures (None: read the ones the server last wrote)."""

    def __init__(self, api: Embedops, who: str = "cli", stats: RolloutStats | None = None,
                 swap: Swap = _direct) -> None:
        self.api, self.who, self.stats, self.swap = api, who, stats, swap
        self.store = RolloutStore(api.workspace)

    def _audit(self, action: str, state: RolloutState, who: str | None, **details: Any) -> None:
        record(self.api.workspace, f"rollout.{action}", who or self.who,
               collection=state.collection, candidate=state.candidate,
               previous=state.previous, phase=state.phase, **details)

    # -- start and backfill -------------------------------------------------------------------
    def start(self, collection: str, model: str, mode: str = CANARY, share: float = 0.1,
              rate: float | None = None, gates: GateConfig | None = None,
              index_kind: str | None = None, who: str | None = None) -> RolloutState:
        """Begin rolling ``model`` out on ``collection``: it becomes the candidate (every write
        embeds for it from now on); run ``backfill`` next. Everything is checked first (the
        collection, the model, the index kind, the gates and their golden set), so a refused
        start leaves no rollout behind and no work done."""
        info = self.api.collections.info(collection)
        ref = self.api.models.resolve(model).ref
        if ref == info.model_version:
            raise InvalidInput(f"{ref} already serves '{collection}'",
                               "name a different model version to roll out")
        gates = gates or GateConfig()
        self._check_plan(collection, gates, index_kind)
        now = time.time()
        with self.store.editing(collection) as box:
            if box[0] is not None and box[0].live:
                raise RolloutConflict(
                    f"'{collection}' already has a {box[0].phase} rollout of {box[0].candidate}",
                    "finish, roll back or abort it first")
            state = RolloutState(collection, ref, info.model_version, mode, float(share), rate,
                                 index_kind, gates.to_dict(),
                                 started_at=now, updated_at=now)
            self.api.set_candidate(collection, ref)
            box[0] = state
        # Figures of an earlier rollout must not count towards this one's gates.
        self.store.write_stats(collection, {})
        if self.stats:
            self.stats.reset()
        self._audit("start", state, who, mode=mode, share=share, rate=rate)
        return state

    def _check_plan(self, collection: str, gates: GateConfig, index_kind: str | None) -> None:
        """Refuse a rollout that would fail after its backfill: an unknown index kind, or a
        recall gate on a golden set that does not exist or holds no queries."""
        if index_kind is not None:
            from embedops.index import BACKENDS

            if index_kind not in BACKENDS:
                raise InvalidInput(f"unknown index kind {index_kind!r}",
                                   f"use one of {', '.join(sorted(BACKENDS))}")
        if not gates.golden_set:
            return
        from embedops.monitor.db import MonitorDB

        db = MonitorDB(self.api.workspace)
        try:
            if not db.queries(gates.golden_set, self.api):
                raise InvalidInput(
                    f"golden set '{gates.golden_set}' has no queries; the recall gate of a "
                    f"rollout on '{collection}' needs some",
                    f"add them with 'embedops golden import {gates.golden_set} FILE.jsonl'")
        finally:
            db.close()

    def run_backfill(self, collection: str, stop: threading.Event | None = None,
                     quiet: bool | None = None) -> RolloutState:
        """Embed what the candidate lacks (resumable), build its index, run the golden set on
        both versions, and start serving the canary or shadow. Returns the new state."""
        state = self.store.require(collection)
        if state.phase != BACKFILLING:
            raise RolloutConflict(f"the rollout on '{collection}' is {state.phase}, "
                                  "not backfilling", "see 'embedops rollout status'")
        last = [0.0]

        def progress(done: int, total: int) -> None:
            if time.monotonic() - last[0] >= PROGRESS_EVERY_S or done >= total:
                last[0] = time.monotonic()
                self._set(collection, backfill={"done": done, "total": total})

        done, total = self.api.backfill(collection, state.candidate, state.rate,
                                        on_progress=progress, stop=stop, quiet=quiet)
        self._set(collection, backfill={"done": done, "total": total})
        if done < total:
            return self.store.require(collection)
        self.api.build_index(collection, kind=self._kind(state), model_version=state.candidate,
                             quiet=quiet)
        golden = self._golden(state, quiet)
        with self.store.editing(collection) as box:
            current = self._same(box[0], state)
            if current.phase != BACKFILLING:  # another process finished the same backfill
                return current
            box[0] = current.moved(current.mode, self.who, "backfill complete", golden=golden)
        self._audit("serving", box[0], None, items=total)  # type: ignore[arg-type]
        return box[0]  # type: ignore[return-value]

    def _kind(self, state: RolloutState) -> str:
        if state.index_kind:
            return state.index_kind
        snapshot = self.api.index_status(state.collection, state.previous).get("snapshot") or {}
        return str(snapshot.get("kind") or "flat")

    def _set(self, collection: str, **changes: Any) -> None:
        from dataclasses import replace

        with self.store.editing(collection) as box:
            if box[0] is not None:
                box[0] = replace(box[0], updated_at=time.time(), **changes)

    @staticmethod
    def _same(current: RolloutState | None, expected: RolloutState) -> RolloutState:
        if current is None or current.started_at != expected.started_at:
            raise RolloutConflict(f"the rollout on '{expected.collection}' changed meanwhile",
                                  "see 'embedops rollout status'")
        return current

    def _golden(self, state: RolloutState, quiet: bool | None) -> dict[str, float]:
        config = state.gate_config()
        if not config.golden_set:
            return dict(state.golden)
        from embedops.monitor.db import MonitorDB
        from embedops.monitor.golden import run_golden

        db = MonitorDB(self.api.workspace)
        try:
            out = {}
            for version in (state.previous, state.candidate):
                run = run_golden(self.api, db, state.collection, config.golden_set,
                                 (config.golden_k,), "dense", version, quiet)
                out[version] = float(run.scores.get(f"recall@{config.golden_k}", 0.0))
            return out
        finally:
            db.close()

    # -- status and gates ---------------------------------------------------------------------
    def gates(self, state: RolloutState) -> GateReport:
        """The gate verdicts of ``state`` on the live (or last written) serving figures."""
        figures = self.stats.to_dict() if self.stats else self.store.read_stats(state.collection)
        return evaluate_gates(state.gate_config(), stats_from_dict(figures, state.candidate),
                              state.golden.get(state.previous), state.golden.get(state.candidate))

    def status(self, collection: str, check: bool = True) -> dict[str, Any]:
        """State, serving figures and gate verdicts; a canary whose gates broke is rolled back
        now (``check``)."""
        state = self.store.require(collection)
        report = self.gates(state)
        if check and state.phase == CANARY and report.broken:
            state = self.rollback(collection, "gate broke: " + "; ".join(report.reasons()),
                                  who="gate-evaluator")
        figures = self.stats.to_dict() if self.stats else self.store.read_stats(collection)
        return {**state.to_dict(), "stats": figures, "gates": report.to_dict()}

    # -- switches -----------------------------------------------------------------------------
    def promote(self, collection: str, force: bool = False, who: str | None = None
                ) -> RolloutState:
        """Make the candidate the active version in one switch, after the gates hold (``force``
        skips them; the audit log says so). The previous version stays written, for rollback."""
        state = self.store.require(collection)
        if state.phase not in (CANARY, SHADOW):
            raise RolloutConflict(f"the rollout on '{collection}' is {state.phase}; only a "
                                  "canary or shadow can be promoted", "see rollout status")
        # Catch up items whose dual write raced the backfill's last pass.
        self.api.backfill(collection, state.candidate, None, quiet=True)
        report = self.gates(state)
        if not report.passed and not force:
            raise GateFailed(f"the candidate {state.candidate} does not pass its gates: "
                             + "; ".join(report.reasons()),
                             "wait for more traffic, fix the candidate, or promote with --force")

        def switch() -> RolloutState:
            with self.store.editing(collection) as box:
                moved = self._same(box[0], state).moved(
                    PROMOTED, who or self.who,
                    "forced" if force and not report.passed else "gates passed")
                self.api.switch_versions(collection, state.candidate, state.previous)
                box[0] = moved
            return moved

        promoted: RolloutState = self.swap(switch)
        self._audit("promote", promoted, who, forced=force and not report.passed,
                    gates=report.to_dict())
        return promoted

    def rollback(self, collection: str, reason: str = "rolled back by hand",
                 who: str | None = None) -> RolloutState:
        """Serve the previous version again and stop writing the candidate."""
        return self._end(collection, ROLLED_BACK, reason, who)

    def abort(self, collection: str, reason: str = "aborted by hand", who: str | None = None
              ) -> RolloutState:
        """Stop a rollout before promotion; the candidate's vectors stay in the catalog."""
        return self._end(collection, ABORTED, reason, who)

    def finish(self, collection: str, who: str | None = None) -> RolloutState:
        """End a promoted rollout: the previous version is no longer written."""
        return self._end(collection, FINISHED, "finished", who)

    def _end(self, collection: str, phase: str, reason: str, who: str | None) -> RolloutState:
        state = self.store.require(collection)

        def switch() -> RolloutState:
            with self.store.editing(collection) as box:
                moved = self._same(box[0], state).moved(phase, who or self.who, reason)
                active = moved.candidate if phase == FINISHED else moved.previous
                self.api.switch_versions(collection, active, None)
                box[0] = moved
            return moved

        ended: RolloutState = self.swap(switch)
        self._audit(_ACTIONS[phase], ended, who, reason=reason)
        return ended

