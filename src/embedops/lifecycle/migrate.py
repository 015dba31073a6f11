"""``migrate``: change the model of a live collection in one command, over the rollout steps.

    from embedops.lifecycle.migrate import Migrations, MigrateOptions
    plan = Migrations(api).plan("docs", "minilm@2", MigrateOptions(golden_set="docs-gold"))
    state = Migrations(api).run("docs", "minilm@2", MigrateOptions(golden_set="docs-gold"))

The steps, each idempotent and each recorded when done::

    start ─► backfill ─► build ─► verify ─► golden ─► shadow ─► canary ─► promote ─► finish
                                     │          │         │         │
                                     └──────────┴─────────┴─────────┴──► rolled back

``start``, ``run_backfill`` (index build and golden runs), the gates, ``promote``, ``finish`` and
``rollback`` are those of ``lifecycle.manager.Rollouts``: a migration adds the validation before
anything is done, the order, and automatic rollback. The rollout's own state file
(``rollouts/<collection>.json``) holds the rollout phase; a sidecar,
``rollouts/<collection>.migrate``, holds the migration's options and its last completed step.
A rerun after a crash reads both and continues: every step first looks at the rollout phase, so
a step whose work was done but not yet recorded is skipped, and the backfill only embeds what
the candidate still lacks (every item is embedded once).

Priority: the migration's heavy work (backfill encoding, candidate index build, golden runs) runs
at niceness ``nice`` (default 10, ``lifecycle.worker.at_priority``): ``run`` does it on a thread
of its own, and every thread that one starts inherits the niceness, so a search in the serving
process goes first; the caller's thread waits and keeps its priority. A niced thread shares the
process's interpreter all the same: ``embedops migrate`` is a process of its own (as a
Kubernetes Job would be), and the HTTP route hands the migration to a worker process
(``lifecycle.worker.spawn``) rather than a server thread. One migration of a collection
runs at a time (a lock held for the whole run, released if its process dies).

Traffic: the shadow and canary steps wait ``shadow_seconds`` and ``canary_seconds`` for the
serving figures of a running server. A CLI process has no live traffic; with ``min_traffic`` 0
the traffic gates stay pending and the golden gate alone decides (the promotion is audited as
forced, with the reason). A failed check or broken gate rolls the rollout back: the collection
serves its previous version, with no candidate, exactly as before; the candidate's vectors stay
in the catalog (a later migration to the same version reuses them).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from embedops.engine import Embedops
from embedops.engine.audit import record
from embedops.engine.executors import Executor
from embedops.errors import EmbedopsError, InvalidInput
from embedops.fsio import atomic_write_json, file_lock
from embedops.lifecycle.gates import BROKEN, GateConfig, GateReport, bound_golden_set
from embedops.lifecycle.manager import Rollouts
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
)
from embedops.lifecycle.worker import DEFAULT_NICE, at_priority, check_nice

STEPS = ("start", "backfill", "build", "verify", "golden", "shadow", "canary", "promote",
         "finish")
DONE, REVERTED = "done", "rolled_back"
# Tests kill the process (SIGKILL) once the named step's work is done, before it is recorded.
KILL_ENV = "EMBEDOPS_MIGRATE_KILL_AT"
POLL_S = 0.5
HEARTBEAT_S = 20.0  # well inside lifecycle.service.STALE_BACKFILL_S
Events = Callable[[str, str], None]


class InsufficientSpace(EmbedopsError):
    """The workspace's disk lacks room for the candidate's vectors and index."""

    http_status = 507
    code = "insufficient_space"


class MigrationFailed(EmbedopsError):
    """The migration stopped on a failed check and was rolled back."""

    http_status = 409
    code = "migration_rolled_back"


@dataclass(frozen=True)
class MigrateOptions:
    """How a migration runs. ``min_traffic`` 0 lets it finish without live traffic (the golden
    gate decides); ``min_recall`` is an absolute floor on the candidate's golden recall;
    ``require_golden`` False allows a migration without any golden set (no quality gate);
    ``nice`` (0-19) is the CPU niceness the migration's work runs at, so that serving goes
    first (see the module doc; 0 leaves the priority as it is)."""

    golden_set: str | None = None
    golden_k: int = 10
    recall_tolerance: float = 0.02
    min_recall: float | None = None
    max_p99_ms: float = 1000.0
    max_error_ratio: float = 0.01
    min_traffic: int = 100
    shadow_seconds: float = 0.0
    canary_seconds: float = 60.0
    canary_share: float = 0.1
    rate: float | None = None
    batch: int = 256
    index_kind: str | None = None
    require_golden: bool = True
    nice: int = DEFAULT_NICE

    def __post_init__(self) -> None:
        bad = [name for name, ok in {
            "min_recall": self.min_recall is None or 0.0 <= self.min_recall <= 1.0,
            "shadow_seconds": 0.0 <= self.shadow_seconds <= 86_400,
            "canary_seconds": 0.0 <= self.canary_seconds <= 86_400,
            "canary_share": 0.0 < self.canary_share <= 1.0,
            "rate": self.rate is None or self.rate > 0,
            "batch": 1 <= self.batch <= 100_000,
        }.items() if not ok]
        if bad:
            raise InvalidInput(f"migration settings out of range: {', '.join(bad)}",
                               "min_recall and canary_share lie in 0..1, durations in seconds "
                               "up to a day, rate and batch are positive")
        check_nice(self.nice)
        self.gates()  # validates the gate settings

    def gates(self) -> GateConfig:
        """The rollout gates these options ask for."""
        return GateConfig(self.golden_set, self.golden_k, self.recall_tolerance,
                          self.max_p99_ms, self.max_error_ratio, self.min_traffic)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MigrationPlan:
    """What a migration will do and what it needs, checked before anything is done."""

    collection: str
    source: str
    target: str
    source_dim: int
    target_dim: int
    items: int
    missing: int
    bytes_needed: int
    bytes_free: int
    items_per_s: float
    estimate_s: float
    options: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "steps": list(STEPS)}

    def lines(self) -> list[str]:
        """The plan for people, one line each."""
        o = self.options
        out = [f"migrate '{self.collection}' from {self.source} (dim {self.source_dim}) to "
               f"{self.target} (dim {self.target_dim})",
               f"  backfill {self.missing} of {self.items} items at ~{self.items_per_s:.0f} "
               f"items/s" + (f" (rate limit {o['rate']:.0f}/s)" if o.get("rate") else ""),
               f"  disk: ~{_mb(self.bytes_needed)} needed (vectors and index), "
               f"{_mb(self.bytes_free)} free",
               f"  golden gate: {o.get('golden_set') or 'none'}"
               + (f" (recall@{o['golden_k']}, tolerance {o['recall_tolerance']})"
                  if o.get("golden_set") else ""),
               f"  shadow {o['shadow_seconds']:.0f} s, canary {o['canary_seconds']:.0f} s at "
               f"share {o['canary_share']}, min traffic {o['min_traffic']} requests",
               f"  priority: nice {o.get('nice', DEFAULT_NICE)} (searches go first for the "
               "CPU)" if o.get("nice", DEFAULT_NICE) else "  priority: as the caller's",
               f"  estimated time: ~{self.estimate_s:.0f} s",
               "  steps: " + " → ".join(STEPS)]
        return out + [f"  note: {n}" for n in self.notes]


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


class MigrationStore:
    """The migration sidecar files of a workspace (one per collection, written atomically)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, collection: str) -> Path:
        return self.root / f"{collection}.migrate"

    def get(self, collection: str) -> dict[str, Any] | None:
        path = self.path(collection)
        return json.loads(path.read_text()) if path.exists() else None

    def put(self, state: dict[str, Any]) -> dict[str, Any]:
        self.root.mkdir(parents=True, exist_ok=True)
        state = {**state, "updated_at": time.time()}
        atomic_write_json(self.path(state["collection"]), state)
        return state


def migration_states(root: Path) -> list[dict[str, Any]]:
    """The last migration of every collection that had one (the sidecars under ``root``,
    a workspace's ``rollouts_dir``), by collection name."""
    store = MigrationStore(root)
    names = sorted(p.stem for p in root.glob("*.migrate")) if root.is_dir() else []
    return [state for state in map(store.get, names) if state is not None]


class Migrations:
    """Migrations of one workspace over ``rollouts`` (default: CLI rollouts of ``api``, no live
    figures). ``on_event(step, message)`` reports progress."""

    def __init__(self, api: Embedops, rollouts: Rollouts | None = None, who: str = "cli",
                 on_event: Events | None = None) -> None:
        self.api = api
        self.rollouts = rollouts or Rollouts(api, who)
        self.who = who
        self.store = MigrationStore(api.workspace.rollouts_dir)
        self.on_event = on_event or (lambda step, message: None)

    # -- validation -------------------------------------------------------------------------
    def plan(self, collection: str, target: str, options: MigrateOptions | None = None
             ) -> MigrationPlan:
        """Check everything a migration needs (collection, model, golden set, gates, disk) and
        estimate its time and space; changes nothing."""
        options = self._golden(collection, options or MigrateOptions())
        info = self.api.collections.info(collection)
        model = self.api.models.resolve(target)
        if model.ref == info.model_version:
            raise InvalidInput(f"{model.ref} already serves '{collection}'",
                               "name a different model version to migrate to")
        current = self.rollouts.store.get(collection)
        mine = self.store.get(collection)
        if current is not None and current.live and not (
                mine and mine.get("rollout_started_at") == current.started_at):
            raise RolloutConflict(f"'{collection}' already has a {current.phase} rollout of "
                                  f"{current.candidate}", "finish, roll back or abort it first")
        self.rollouts._check_plan(collection, options.gates(), options.index_kind)
        missing = len(self.api.missing_vectors(collection, model.ref))
        needed = missing * model.dim * 4 * 2
        free = shutil.disk_usage(self.api.workspace.home).free
        if needed > free:
            raise InsufficientSpace(
                f"migrating '{collection}' to {model.ref} needs ~{_mb(needed)} ({missing} "
                f"items x dim {model.dim} x 4 bytes x 2), {_mb(free)} is free",
                "free disk space under the workspace, or migrate to a smaller model")
        speed = self._speed(collection, model.ref)
        limit = min(speed, options.rate) if options.rate else speed
        notes = self._notes(info.dim, model.dim, options)
        estimate = missing / max(limit, 1e-6) + options.shadow_seconds + options.canary_seconds
        return MigrationPlan(collection, info.model_version, model.ref, info.dim, model.dim,
                             info.item_count, missing, needed, free, round(speed, 1),
                             round(estimate, 1), options.to_dict(), notes)

    def _golden(self, collection: str, options: MigrateOptions) -> MigrateOptions:
        """Options with the golden set named, or the one set bound to ``collection``."""
        if options.golden_set or not options.require_golden:
            return options
        name = bound_golden_set(
            self.api, collection,
            f"a migration of '{collection}' needs a golden set for its quality gate",
            "name one with --golden NAME, or pass --no-golden to migrate without a quality gate")
        return replace(options, golden_set=name)

    def _speed(self, collection: str, ref: str) -> float:
        """Items per second the target model embeds, measured on a sample of the collection."""
        texts = [item.text for item in self.api.peek(collection, 64)]
        if not texts:
            return 1000.0
        self.api.embed(texts[:2], ref)  # load the model before timing
        began = time.perf_counter()
        self.api.embed(texts, ref)
        return len(texts) / max(time.perf_counter() - began, 1e-6)

    @staticmethod
    def _notes(source_dim: int, target_dim: int, options: MigrateOptions) -> list[str]:
        notes = []
        if source_dim != target_dim:
            notes.append(f"dimension changes {source_dim} → {target_dim}: the candidate gets "
                         "its own index; callers that search with their own query vectors "
                         f"must send dim {target_dim} after promotion")
        if options.min_traffic == 0:
            notes.append("min traffic 0: without live traffic the golden gate alone decides "
                         "the promotion (audited as forced)")
        if not options.golden_set:
            notes.append("no golden set: nothing checks the candidate's quality")
        return notes

    # -- running ----------------------------------------------------------------------------
    def running(self, collection: str) -> bool:
        """True while a process (this one or another) runs a migration of ``collection``."""
        try:
            with self._run_lock(collection):
                return False
        except RolloutConflict:
            return True

    @contextlib.contextmanager
    def _run_lock(self, collection: str) -> Iterator[None]:
        """Held for a whole run: a second run of the same collection is refused at once."""
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(file_lock(
                    self.store.path(collection).with_suffix(".migrate-run"), wait=False))
            except BlockingIOError:
                raise RolloutConflict(f"a migration of '{collection}' is already running "
                                      "(in another process or thread)",
                                      "wait for it to end (GET .../migrate or 'embedops "
                                      "rollout status' show where it is)") from None
            yield

    def status(self, collection: str) -> dict[str, Any]:
        """The migration sidecar of ``collection`` with its rollout's phase (404 if none)."""
        state = self.store.get(collection)
        if state is None:
            from embedops.errors import NotFound

            raise NotFound(f"collection '{collection}' has no migration",
                           f"start one with 'embedops migrate {collection} --to MODEL'")
        rollout = self.rollouts.store.get(collection)
        return {**state, "rollout_phase": rollout.phase if rollout else None}

    def begin(self, collection: str, target: str | None,
              options: MigrateOptions | None = None) -> dict[str, Any]:
        """The live migration of ``collection`` to resume, or a new one after ``plan``."""
        with file_lock(self.store.path(collection).with_suffix(".migrate-lock")):
            state = self.store.get(collection)
            if state is not None and state["step"] not in (DONE, REVERTED):
                if target and self.api.models.resolve(target).ref != state["target"]:
                    raise RolloutConflict(
                        f"'{collection}' is migrating to {state['target']}, not {target}",
                        f"rerun 'embedops migrate {collection} --to {state['target']}' to "
                        "finish it, or roll it back with 'embedops rollout rollback'")
                self.on_event("resume", f"resuming after step {state['step']}")
                return state
            if not target:
                raise InvalidInput(f"'{collection}' has no migration to resume",
                                   "name the model with --to")
            plan = self.plan(collection, target, options)
            state = self.store.put({
                "collection": collection, "target": plan.target, "source": plan.source,
                "options": plan.options, "step": "validated", "rollout_started_at": None,
                "started_at": time.time(), "reason": None, "plan": plan.to_dict()})
        record(self.api.workspace, "migrate.start", self.who, collection=collection,
               source=plan.source, target=plan.target)
        return state

    def run(self, collection: str, target: str | None,
            options: MigrateOptions | None = None, stop: threading.Event | None = None,
            executor: Executor | None = None) -> dict[str, Any]:
        """Run (or resume) the migration of ``collection`` to ``target`` to its end. Returns the
        final sidecar state: step ``done``, ``rolled_back`` (with a reason), or the last step
        done when ``stop`` was set. The work runs on a thread at ``options.nice`` while the
        calling thread waits (its own priority unchanged)."""
        def work() -> dict[str, Any]:
            with self._run_lock(collection):
                return self._run(collection, target, options, stop, executor)

        return at_priority(self._nice(collection, options), work)

    def _nice(self, collection: str, options: MigrateOptions | None) -> int:
        """The niceness of the run: a live migration's own (it resumes with its options)."""
        state = self.store.get(collection)
        if state is not None and state["step"] not in (DONE, REVERTED):
            return int(state["options"].get("nice", DEFAULT_NICE))
        return (options or MigrateOptions()).nice

    def _run(self, collection: str, target: str | None, options: MigrateOptions | None,
             stop: threading.Event | None, executor: Executor | None) -> dict[str, Any]:
        state = self.begin(collection, target, options)
        opts = MigrateOptions(**state["options"])
        start = 0 if state["step"] == "validated" else STEPS.index(state["step"]) + 1
        for step in STEPS[start:]:
            if stop is not None and stop.is_set():
                return state
            self.on_event(step, "running")
            try:
                with self._heartbeat(state):
                    outcome = getattr(self, f"_step_{step}")(state, opts, stop, executor)
            except (MigrationFailed, GateFailed) as exc:
                return self._revert(state, exc.message)
            if outcome == "stopped":
                return state
            if outcome == "over":  # the rollout ended outside this migration
                return self._settle(state)
            _kill_hook(step)
            state = self.store.put({**state, "step": step})
        state = self.store.put({**state, "step": DONE})
        record(self.api.workspace, "migrate.done", self.who, collection=collection,
               target=state["target"])
        self.on_event(DONE, f"'{collection}' now serves {state['target']}")
        return state

    @contextlib.contextmanager
    def _heartbeat(self, state: dict[str, Any]) -> Iterator[None]:
        """While a step runs, stamp this migration's backfilling rollout every
        ``HEARTBEAT_S``: a server resumes a backfill silent for ``STALE_BACKFILL_S`` (its
        process died) in its own threads, which must not happen to a live, if slow (niced),
        backfill, index build or golden run."""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(HEARTBEAT_S):
                with self.rollouts.store.editing(state["collection"]) as box:
                    current = box[0]
                    if current is not None and current.phase == BACKFILLING and \
                            current.started_at == state.get("rollout_started_at"):
                        box[0] = replace(current, updated_at=time.time())

        thread = threading.Thread(target=beat, name="migrate-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def _revert(self, state: dict[str, Any], reason: str) -> dict[str, Any]:
        rollout = self._rollout(state)
        if rollout is not None and rollout.live:
            self.rollouts.rollback(state["collection"], f"migration: {reason}", who=self.who)
        self.on_event(REVERTED, reason)
        record(self.api.workspace, "migrate.rollback", self.who,
               collection=state["collection"], target=state["target"], reason=reason)
        return self.store.put({**state, "step": REVERTED, "reason": reason})

    def _settle(self, state: dict[str, Any]) -> dict[str, Any]:
        rollout = self._rollout(state)
        if rollout is not None and rollout.phase == FINISHED:
            return self.store.put({**state, "step": DONE})
        reason = (rollout.reason if rollout else None) or "the rollout ended"
        self.on_event(REVERTED, reason)
        return self.store.put({**state, "step": REVERTED, "reason": reason})

    def _rollout(self, state: dict[str, Any]) -> RolloutState | None:
        current = self.rollouts.store.get(state["collection"])
        if current is None or current.started_at != state.get("rollout_started_at"):
            return None
        return current

    def _live(self, state: dict[str, Any]) -> RolloutState | None:
        """This migration's rollout; None when it ended (rolled back, aborted, finished)."""
        current = self._rollout(state)
        return current if current is not None and current.phase not in (
            ROLLED_BACK, ABORTED, FINISHED) else None

    # -- steps: each returns None (done), "stopped" or "over" ---------------------------------
    def _step_start(self, state: dict[str, Any], opts: MigrateOptions, *_: Any) -> str | None:
        if self._rollout(state) is not None:
            return None
        current = self.rollouts.store.get(state["collection"])
        if current is not None and current.live and current.candidate == state["target"] \
                and current.phase == BACKFILLING:
            started = current  # killed between the rollout's start and recording it
        else:
            started = self.rollouts.start(state["collection"], state["target"], SHADOW,
                                          opts.canary_share, opts.rate, opts.gates(),
                                          opts.index_kind, who=self.who)
        state["rollout_started_at"] = started.started_at
        return None

    def _step_backfill(self, state: dict[str, Any], opts: MigrateOptions,
                       stop: threading.Event | None, executor: Executor | None) -> str | None:
        rollout = self._live(state)
        if rollout is None:
            return "over"
        if rollout.phase != BACKFILLING:
            return None
        last = [0.0]

        def progress(done: int, total: int) -> None:
            _kill_hook("backfill-batch")
            if time.monotonic() - last[0] >= 1.0 or done >= total:
                last[0] = time.monotonic()
                self.on_event("backfill", f"{done}/{total} items")

        done, total = self.api.backfill(state["collection"], state["target"], opts.rate,
                                        opts.batch, progress, stop, True, executor)
        return "stopped" if done < total else None

    def _step_build(self, state: dict[str, Any], opts: MigrateOptions,
                    stop: threading.Event | None, _executor: Any) -> str | None:
        rollout = self._live(state)
        if rollout is None:
            return "over"
        if rollout.phase == BACKFILLING:
            moved = self.rollouts.run_backfill(state["collection"], stop, quiet=True)
            if moved.phase == BACKFILLING:
                return "stopped"
        return None

    def _step_verify(self, state: dict[str, Any], *_: Any) -> str | None:
        if self._live(state) is None:
            return "over"
        checks = self.api.verify_index(state["collection"], state["target"])
        bad = [f"{c.name}: {'; '.join(c.problems)}" for c in checks if not c.ok]
        if bad:
            raise MigrationFailed("the candidate's index failed verification: " + " | ".join(bad))
        return None

    def _step_golden(self, state: dict[str, Any], opts: MigrateOptions, *_: Any) -> str | None:
        rollout = self._live(state)
        if rollout is None:
            return "over"
        if not opts.golden_set:
            return None
        # The figures go into the migration's record (both versions, as the gate saw them),
        # kept there when the gate fails and the migration is rolled back.
        state["golden"] = {"k": opts.golden_k, "recall": dict(rollout.golden)}
        report = self.rollouts.gates(rollout)
        recall = next((c for c in report.checks if c.name == "golden_recall"), None)
        if recall is not None and recall.status == BROKEN:
            raise MigrationFailed(f"golden gate: {recall.detail}")
        score = rollout.golden.get(rollout.candidate)
        if opts.min_recall is not None and (score is None or score < opts.min_recall):
            raise MigrationFailed(f"golden gate: candidate recall@{opts.golden_k} {score} is "
                                  f"below the floor {opts.min_recall}")
        self.on_event("golden", f"recall@{opts.golden_k} {rollout.golden}")
        return None

    def _step_shadow(self, state: dict[str, Any], opts: MigrateOptions,
                     stop: threading.Event | None, _executor: Any) -> str | None:
        rollout = self._live(state)
        if rollout is None:
            return "over"
        if rollout.phase != SHADOW:
            return None
        if self._watch(rollout, opts.shadow_seconds, 0, stop) == "stopped":
            return "stopped"
        with self.rollouts.store.editing(state["collection"]) as box:
            current = box[0]
            if current is None or current.phase != SHADOW:
                return None
            # The state machine has no shadow → canary edge: a migration moves on itself,
            # and says so in the rollout's history.
            entry = {"ts": round(time.time(), 3), "from": SHADOW, "to": CANARY,
                     "who": self.who, "reason": "migration: shadow done"}
            box[0] = replace(current, phase=CANARY, mode=CANARY, updated_at=time.time(),
                             reason="migration: shadow done", history=[*current.history, entry])
        return None

    def _step_canary(self, state: dict[str, Any], opts: MigrateOptions,
                     stop: threading.Event | None, _executor: Any) -> str | None:
        rollout = self._live(state)
        if rollout is None:
            return "over"
        if rollout.phase != CANARY:
            return None
        return self._watch(rollout, opts.canary_seconds, opts.min_traffic, stop)

    def _watch(self, rollout: RolloutState, seconds: float, min_traffic: int,
               stop: threading.Event | None) -> str | None:
        """Watch the gates for ``seconds`` (a canary: until they pass); a broken gate fails
        the migration; gates still pending at the end fail it unless ``min_traffic`` is 0."""
        deadline = time.monotonic() + seconds
        while True:
            current = self.rollouts.store.get(rollout.collection)
            if current is None or current.started_at != rollout.started_at or not current.live:
                raise MigrationFailed("the rollout ended meanwhile: "
                                      + str(current.reason if current else "removed"))
            rollout = current
            report = self.rollouts.gates(rollout)
            if report.broken:
                raise MigrationFailed("gate broke: " + "; ".join(report.reasons()))
            canary = rollout.phase == CANARY
            if canary and report.passed and min_traffic > 0:
                return None
            if time.monotonic() >= deadline:
                break
            if stop is not None and stop.wait(POLL_S):
                return "stopped"
            if stop is None:
                time.sleep(POLL_S)
        if canary and min_traffic > 0 and not report.passed:
            raise MigrationFailed(f"gates still pending after {seconds:.0f} s of canary: "
                                  + "; ".join(report.reasons()))
        return None

    def _step_promote(self, state: dict[str, Any], opts: MigrateOptions, *_: Any) -> str | None:
        rollout = self._live(state)
        if rollout is None:
            return "over"
        if rollout.phase == PROMOTED:
            return None
        report = self.rollouts.gates(rollout)
        offline = opts.min_traffic == 0 and _only_traffic_pending(report)
        self.rollouts.promote(state["collection"], force=offline,
                              who=f"{self.who} (migrate, golden gate)" if offline else None)
        return None

    def _step_finish(self, state: dict[str, Any], *_: Any) -> str | None:
        rollout = self._rollout(state)
        if rollout is not None and rollout.phase == PROMOTED:
            self.rollouts.finish(state["collection"], who=self.who)
            return None
        return None if rollout is not None and rollout.phase == FINISHED else "over"


def _only_traffic_pending(report: GateReport) -> bool:
    """True when every gate that does not pass waits for traffic (none broken, golden passed)."""
    waiting = [c for c in report.checks if c.status != "pass"]
    return not report.broken and all(c.name != "golden_recall" for c in waiting)


def _kill_hook(step: str) -> None:
    if os.environ.get(KILL_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)
