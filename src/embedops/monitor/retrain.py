"""Retrain proposals from drift: what the scheduled drift check does when it flags drift.

A policy file, ``retrain_policy.json`` in the workspace home, switches it on::

    {"enabled": true, "collections": ["docs"], "margin": 0.02, "auto_train": true,
     "train": {"method": "auto", "params": {"epochs": 10}}, "auto_migrate": false,
     "migrate": {"golden_set": "docs-gold", "min_traffic": 0, "canary_seconds": 0}}

``enabled`` (default false: no file, no proposals), ``collections`` (null: every collection),
``margin`` (how much the candidate's held-out recall must beat the active model's before a
migration is worth starting), ``auto_migrate`` (default false) and ``migrate`` (the settings
of ``lifecycle.migrate.MigrateOptions`` an automatic migration runs with; default: the CLI's),
``auto_train`` (default false) and ``train`` (the settings of
``lifecycle.candidate.TrainSettings``): with ``auto_train`` a new proposal gets its candidate
made at once, in a background worker process (``lifecycle.proposals.start_candidate``):
trained on recent data plus mined feedback pairs, evaluated against the golden set, accepted
only when it beats the active model by ``margin``.
When a scheduled drift check flags a collection, one open proposal is appended to
``retrain_proposals.jsonl`` (never a second while one is open or in progress for that
collection) and the audit log records ``retrain.proposed``.

A proposal's life (``lifecycle.proposals`` moves it)::

    open ─► accepted ─► migrating ─► migrated | rolled_back
      └───► rejected (its candidate failed the evaluation)

With ``auto_migrate`` an accepted proposal migrates at once; otherwise it waits for
``embedops migrate COLLECTION --from-proposal ID``. Every move is in the audit log.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from embedops.config import Workspace
from embedops.engine import audit
from embedops.errors import InvalidInput, NotFound
from embedops.fsio import atomic_write_bytes, file_lock

POLICY_FILE = "retrain_policy.json"
PROPOSALS_FILE = "retrain_proposals.jsonl"
OPEN, ACCEPTED, REJECTED, MIGRATING, MIGRATED, ROLLED_BACK = (
    "open", "accepted", "rejected", "migrating", "migrated", "rolled_back")
# A collection has at most one proposal in these states at a time.
PENDING = (OPEN, ACCEPTED, MIGRATING)


class PolicyError(InvalidInput):
    """The retrain policy file cannot be read or asks for something unsupported."""

    code = "bad_retrain_policy"


@dataclass(frozen=True)
class RetrainPolicy:
    """What to do when drift is flagged (see the module doc)."""

    enabled: bool = False
    collections: tuple[str, ...] | None = None
    margin: float = 0.02
    auto_migrate: bool = False
    migrate: dict[str, Any] | None = None
    auto_train: bool = False
    train: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.margin <= 1.0:
            raise PolicyError(f"margin must lie in [0, 1], got {self.margin}")
        if self.migrate is not None and not isinstance(self.migrate, dict):
            raise PolicyError("'migrate' must be an object of migration settings or null",
                              'e.g. {"golden_set": "docs-gold", "canary_seconds": 120}')
        if self.train is not None and not isinstance(self.train, dict):
            raise PolicyError("'train' must be an object of retrain settings or null",
                              'e.g. {"method": "static", "params": {"epochs": 10}}')

    def applies_to(self, collection: str) -> bool:
        """True when the policy is on and covers ``collection``."""
        return self.enabled and (self.collections is None or collection in self.collections)

    @classmethod
    def load(cls, workspace: Workspace) -> RetrainPolicy:
        """The workspace's policy; off when there is no file."""
        path = workspace.home / POLICY_FILE
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PolicyError(f"cannot read {path}: {exc}") from exc
        known = {"enabled", "collections", "margin", "auto_migrate", "migrate", "auto_train",
                 "train"}
        if not isinstance(data, dict) or set(data) - known:
            raise PolicyError(f"{path} must be an object with keys from {sorted(known)}")
        collections = data.get("collections")
        if collections is not None and not (isinstance(collections, list) and all(
                isinstance(c, str) for c in collections)):
            raise PolicyError(f"{path}: 'collections' must be a list of names or null")
        return cls(bool(data.get("enabled", False)),
                   None if collections is None else tuple(collections),
                   float(data.get("margin", 0.02)), bool(data.get("auto_migrate", False)),
                   data.get("migrate"), bool(data.get("auto_train", False)), data.get("train"))


def proposals(workspace: Workspace) -> list[dict[str, Any]]:
    """Every proposal, oldest first."""
    path = workspace.home / PROPOSALS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def propose_on_drift(workspace: Workspace, collection: str, drifted: bool,
                     reasons: list[str], model_version: str,
                     who: str = "scheduler") -> dict[str, Any] | None:
    """Open a retrain proposal for ``collection`` when the policy asks and drift was flagged;
    returns it, or None (policy off, no drift, or one already open)."""
    policy = RetrainPolicy.load(workspace)
    if not drifted or not policy.applies_to(collection):
        return None
    path = workspace.home / PROPOSALS_FILE
    with file_lock(path.with_suffix(".lock")):
        if any(p["collection"] == collection and p["status"] in PENDING
               for p in proposals(workspace)):
            return None
        proposal = {
            "id": uuid.uuid4().hex, "ts": round(time.time(), 3), "collection": collection,
            "model_version": model_version, "reasons": list(reasons), "status": "open",
            "margin": policy.margin,
            "steps": ["embedops feedback mine",
                      "embedops finetune ACTIVE pairs_train.jsonl --eval pairs_heldout.jsonl",
                      "embedops proposals accept ID --candidate MODEL (evaluates it: held-out "
                      f"recall must beat the active's by {policy.margin})",
                      "embedops migrate COLLECTION --from-proposal ID (automatic with "
                      "auto_migrate)"]}
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(proposal) + "\n")
    audit.record(workspace, "retrain.proposed", who, collection=collection,
                 proposal=proposal["id"], model_version=model_version, reasons=list(reasons))
    return proposal


def proposal_counts(workspace: Workspace) -> list[tuple[str, str, int]]:
    """``(collection, status, proposals)`` for every combination seen (for the metrics)."""
    counts: dict[tuple[str, str], int] = {}
    for p in proposals(workspace):
        key = (str(p["collection"]), str(p["status"]))
        counts[key] = counts.get(key, 0) + 1
    return [(c, s, n) for (c, s), n in sorted(counts.items())]


def get_proposal(workspace: Workspace, proposal_id: str) -> dict[str, Any]:
    """The proposal ``proposal_id`` (404 when there is none)."""
    found = [p for p in proposals(workspace) if p["id"] == proposal_id]
    if not found:
        raise NotFound(f"no retrain proposal '{proposal_id}'",
                       "list them with 'embedops proposals list'")
    return found[0]


def update_proposal(workspace: Workspace, proposal_id: str, who: str,
                    expect: tuple[str, ...], **changes: Any) -> dict[str, Any]:
    """Change proposal ``proposal_id`` (its file rewritten atomically, under the file's lock)
    when its status is one of ``expect``; a new ``status`` is audited as ``retrain.<status>``.
    Returns the proposal as changed."""
    from embedops.errors import Conflict

    path = workspace.home / PROPOSALS_FILE
    with file_lock(path.with_suffix(".lock")):
        rows = proposals(workspace)
        current = get_proposal(workspace, proposal_id)
        if current["status"] not in expect:
            raise Conflict(f"retrain proposal '{proposal_id}' is {current['status']}, not "
                           f"{' or '.join(expect)}",
                           "see 'embedops proposals list' for where it stands")
        changed = {**current, **changes, "updated_at": round(time.time(), 3)}
        text = "".join(json.dumps(changed if p["id"] == proposal_id else p) + "\n"
                       for p in rows)
        atomic_write_bytes(path, text.encode("utf-8"))
    if "status" in changes:
        details = {k: v for k, v in changes.items() if k != "status"}
        audit.record(workspace, f"retrain.{changes['status']}", who,
                     collection=changed["collection"], proposal=proposal_id, **details)
    return changed


__all__ = ["ACCEPTED", "MIGRATED", "MIGRATING", "OPEN", "PENDING", "POLICY_FILE",
           "PROPOSALS_FILE", "REJECTED", "ROLLED_BACK", "PolicyError", "RetrainPolicy",
           "get_proposal", "proposal_counts", "proposals", "propose_on_drift",
           "update_proposal"]
