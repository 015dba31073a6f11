"""Retrain proposals from drift: what the scheduled drift check does when it flags drift.

A policy file, ``retrain_policy.json`` in the workspace home, switches it on::

    {"enabled": true, "collections": ["docs"], "margin": 0.02}

``enabled`` (default false: no file, no proposals), ``collections`` (null: every collection),
``margin`` (how much the fine-tuned candidate's golden recall must beat the active model's
before a migration is worth starting), ``auto_migrate`` (must stay false: this version only
proposes; a person runs ``embedops feedback mine``, ``embedops finetune`` and
``embedops migrate``). When a scheduled drift check flags a collection, one open proposal is
appended to ``retrain_proposals.jsonl`` (never a second while one is open for that
collection) and the audit log records ``retrain.proposed``.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from embedops.config import Workspace
from embedops.engine import audit
from embedops.errors import InvalidInput
from embedops.fsio import file_lock

POLICY_FILE = "retrain_policy.json"
PROPOSALS_FILE = "retrain_proposals.jsonl"


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

    def __post_init__(self) -> None:
        if self.auto_migrate:
            raise PolicyError("auto_migrate is not supported yet",
                              "set it to false; proposals are reviewed and run by a person")
        if not 0.0 <= self.margin <= 1.0:
            raise PolicyError(f"margin must lie in [0, 1], got {self.margin}")

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
        known = {"enabled", "collections", "margin", "auto_migrate"}
        if not isinstance(data, dict) or set(data) - known:
            raise PolicyError(f"{path} must be an object with keys from {sorted(known)}")
        collections = data.get("collections")
        if collections is not None and not (isinstance(collections, list) and all(
                isinstance(c, str) for c in collections)):
            raise PolicyError(f"{path}: 'collections' must be a list of names or null")
        return cls(bool(data.get("enabled", False)),
                   None if collections is None else tuple(collections),
                   float(data.get("margin", 0.02)), bool(data.get("auto_migrate", False)))


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
        if any(p["collection"] == collection and p["status"] == "open"
               for p in proposals(workspace)):
            return None
        proposal = {
            "id": uuid.uuid4().hex, "ts": round(time.time(), 3), "collection": collection,
            "model_version": model_version, "reasons": list(reasons), "status": "open",
            "margin": policy.margin,
            "steps": ["embedops feedback mine", "embedops finetune (or train a static model)",
                      "embedops golden run on the candidate",
                      f"embedops migrate if its recall beats the active's by {policy.margin}"]}
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(proposal) + "\n")
    audit.record(workspace, "retrain.proposed", who, collection=collection,
                 proposal=proposal["id"], model_version=model_version, reasons=list(reasons))
    return proposal


__all__ = ["POLICY_FILE", "PROPOSALS_FILE", "PolicyError", "RetrainPolicy", "proposals",
           "propose_on_drift"]
