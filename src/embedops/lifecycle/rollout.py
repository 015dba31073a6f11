"""The rollout state machine and its persisted state.

One JSON file per collection, ``<workspace>/rollouts/<collection>.json``, written atomically
(temp file, fsync, rename) under a file lock, so the CLI and a running server see one state::

    backfilling ──► canary | shadow ──► promoted ──► finished
         │                │                 │
         └──► aborted ◄───┤                 └──► rolled_back
                          └──► rolled_back (by hand, or automatically when a gate breaks)

The catalog holds what serving needs (the active and the candidate version); this file holds
the rollout's settings, progress and history.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from embedops.config import Workspace
from embedops.errors import Conflict, InvalidInput, NotFound
from embedops.fsio import atomic_write_json, file_lock
from embedops.lifecycle.gates import GateConfig

BACKFILLING, CANARY, SHADOW, PROMOTED = "backfilling", "canary", "shadow", "promoted"
FINISHED, ROLLED_BACK, ABORTED = "finished", "rolled_back", "aborted"
LIVE = (BACKFILLING, CANARY, SHADOW, PROMOTED)
MODES = (CANARY, SHADOW)

_NEXT = {
    BACKFILLING: {CANARY, SHADOW, ABORTED, ROLLED_BACK},
    CANARY: {PROMOTED, ROLLED_BACK, ABORTED},
    SHADOW: {PROMOTED, ROLLED_BACK, ABORTED},
    PROMOTED: {ROLLED_BACK, FINISHED},
}
_SAFE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RolloutConflict(Conflict):
    """The rollout is not in a phase that allows this step."""

    code = "rollout_conflict"


class GateFailed(Conflict):
    """Promotion was refused because a gate does not hold."""

    code = "gate_failed"


class RolloutNotFound(NotFound):
    """The collection has no rollout."""

    code = "rollout_not_found"


@dataclass(frozen=True)
class RolloutState:
    """A rollout of ``candidate`` onto ``collection`` (whose active version was ``previous``)."""

    collection: str
    candidate: str
    previous: str
    mode: str = CANARY
    share: float = 0.1
    rate: float | None = None
    index_kind: str | None = None
    gates: dict[str, Any] = field(default_factory=dict)
    phase: str = BACKFILLING
    backfill: dict[str, int] = field(default_factory=lambda: {"done": 0, "total": 0})
    golden: dict[str, float] = field(default_factory=dict)
    reason: str | None = None
    started_at: float = 0.0
    updated_at: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InvalidInput(f"unknown rollout mode {self.mode!r}", "use canary or shadow")
        if not (isinstance(self.share, int | float) and 0.0 < float(self.share) <= 1.0):
            raise InvalidInput(f"the canary share must be in (0, 1], got {self.share!r}",
                               "write e.g. --canary 0.1 for 10% of search traffic")
        if self.phase not in (*LIVE, FINISHED, ROLLED_BACK, ABORTED):
            raise InvalidInput(f"unknown rollout phase {self.phase!r}")

    @property
    def live(self) -> bool:
        """True until the rollout is finished, rolled back or aborted."""
        return self.phase in LIVE

    @property
    def serving_version(self) -> str:
        """The version that serves by default in this phase."""
        return self.candidate if self.phase == PROMOTED else self.previous

    def gate_config(self) -> GateConfig:
        return GateConfig(**self.gates)

    def moved(self, phase: str, who: str, reason: str | None = None, **changes: Any
              ) -> RolloutState:
        """This state in ``phase`` (RolloutConflict when the machine does not allow it)."""
        if phase not in _NEXT.get(self.phase, set()):
            raise RolloutConflict(
                f"the rollout of {self.candidate} on '{self.collection}' is {self.phase}; "
                f"it cannot become {phase}",
                _hint(self.phase),
            )
        now = time.time()
        entry = {"ts": round(now, 3), "from": self.phase, "to": phase, "who": who,
                 "reason": reason}
        return replace(self, phase=phase, reason=reason, updated_at=now,
                       history=[*self.history, entry], **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _hint(phase: str) -> str:
    return {
        BACKFILLING: "wait for the backfill (rollout status), or abort it",
        CANARY: "promote, roll back or abort it",
        SHADOW: "promote, roll back or abort it",
        PROMOTED: "roll it back, or finish it to stop writing the previous version",
    }.get(phase, "start a new rollout")


class RolloutStore:
    """Reads and writes rollout states of one workspace (safe across processes)."""

    def __init__(self, workspace: Workspace) -> None:
        self.root = workspace.rollouts_dir

    def path(self, collection: str) -> Path:
        if not isinstance(collection, str) or not _SAFE.match(collection):
            raise InvalidInput(f"bad collection name {collection!r}")
        return self.root / f"{collection}.json"

    def stats_path(self, collection: str) -> Path:
        return self.path(collection).with_suffix(".stats.json")

    def get(self, collection: str) -> RolloutState | None:
        """The latest rollout of ``collection`` (live or not), or None."""
        path = self.path(collection)
        if not path.exists():
            return None
        return RolloutState(**json.loads(path.read_text()))

    def require(self, collection: str) -> RolloutState:
        state = self.get(collection)
        if state is None:
            raise RolloutNotFound(f"collection '{collection}' has no rollout",
                                  f"start one with 'embedops rollout start {collection} "
                                  "--model NAME'")
        return state

    @contextmanager
    def editing(self, collection: str) -> Iterator[list[RolloutState | None]]:
        """Yield ``[state]``; whatever the block leaves in the list is written atomically, all
        under the collection's lock (one writer at a time, across processes)."""
        path = self.path(collection)
        with file_lock(path.with_suffix(".lock")):
            box = [self.get(collection)]
            before = box[0]
            yield box
            if box[0] is not None and box[0] is not before:
                atomic_write_json(path, box[0].to_dict())

    def write_stats(self, collection: str, stats: dict[str, Any]) -> None:
        atomic_write_json(self.stats_path(collection), {"ts": time.time(), "versions": stats})

    def read_stats(self, collection: str) -> dict[str, Any]:
        path = self.stats_path(collection)
        if not path.exists():
            return {}
        try:
            return dict(json.loads(path.read_text()).get("versions") or {})
        except (ValueError, AttributeError):
            return {}

    def live(self) -> list[RolloutState]:
        """Every rollout that is not over."""
        if not self.root.exists():
            return []
        out = []
        for path in sorted(self.root.glob("*.json")):
            if path.name.endswith(".stats.json"):
                continue
            state = self.get(path.stem)
            if state is not None and state.live:
                out.append(state)
        return out
