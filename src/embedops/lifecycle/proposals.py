"""Retrain proposals carried through to a migration (``monitor.retrain`` opens them).

    from embedops.lifecycle.proposals import Proposals
    proposal = Proposals(api).accept(proposal_id, "minilm-fb@1")   # evaluates the candidate
    proposal, state = Proposals(api).migrate(proposal_id)           # --from-proposal

``accept`` names the candidate a person (or a retrain job) made for an open proposal and
evaluates it: the held-out recall@10 its fine-tuning recorded (``eval.heldout`` of its
manifest, the parent measured on the same pairs before training) must beat the parent's by the
policy's ``margin``, and the parent must be the model the collection serves. A candidate that
fails is *rejected*. One that passes is *accepted*; with ``auto_migrate`` in the policy it
migrates at once, otherwise it waits for ``embedops migrate COLLECTION --from-proposal ID``.
Either way the migration is ``lifecycle.migrate.Migrations.run``, the call the CLI makes, with
the same validation, gates and automatic rollback.
"""

from __future__ import annotations

from typing import Any

from embedops.engine import Embedops
from embedops.engine.executors import Executor
from embedops.errors import Conflict, EmbedopsError, InvalidInput
from embedops.lifecycle.manager import Rollouts
from embedops.lifecycle.migrate import DONE, Events, MigrateOptions, Migrations
from embedops.monitor.retrain import (
    ACCEPTED,
    MIGRATED,
    MIGRATING,
    OPEN,
    REJECTED,
    ROLLED_BACK,
    PolicyError,
    RetrainPolicy,
    get_proposal,
    update_proposal,
)

METRIC = "recall@10"


def evaluate_candidate(api: Embedops, active: str, candidate: str,
                       margin: float) -> dict[str, Any]:
    """Whether ``candidate`` beats ``active`` by ``margin`` on its held-out pairs:
    ``{"metric", "active", "candidate", "gain", "margin", "passed", "reason"}``."""
    model = api.models.resolve(candidate)
    heldout = (model.manifest.get("eval") or {}).get("heldout") or {}
    before, after = heldout.get("before") or {}, heldout.get("after") or {}
    out: dict[str, Any] = {"metric": METRIC, "active": before.get(METRIC),
                           "candidate": after.get(METRIC), "gain": None, "margin": margin}
    if model.parent != active:
        reason = (f"{model.ref} was trained from {model.parent or 'nothing'}, not from the "
                  f"active {active}: its held-out figures say nothing about the active model")
    elif out["active"] is None or out["candidate"] is None:
        reason = (f"{model.ref} has no held-out evaluation (fine-tune it with --eval "
                  "pairs_heldout.jsonl)")
    else:
        out["gain"] = round(out["candidate"] - out["active"], 6)
        beats = out["gain"] >= margin
        reason = (f"held-out {METRIC} {out['candidate']:.4f} vs active {out['active']:.4f}: "
                  f"gain {out['gain']:+.4f} {'meets' if beats else 'is below'} the margin "
                  f"{margin}")
        return {**out, "passed": beats, "reason": reason}
    return {**out, "passed": False, "reason": reason}


class Proposals:
    """Accept, evaluate and migrate retrain proposals of one workspace. ``rollouts`` and
    ``on_event`` go to ``Migrations`` (a server passes its live rollouts)."""

    def __init__(self, api: Embedops, who: str = "cli", rollouts: Rollouts | None = None,
                 on_event: Events | None = None) -> None:
        self.api, self.who = api, who
        self.migrations = Migrations(api, rollouts, who, on_event)

    def accept(self, proposal_id: str, candidate: str,
               executor: Executor | None = None) -> dict[str, Any]:
        """Evaluate ``candidate`` for the open proposal ``proposal_id``: rejected, or accepted
        (and, with ``auto_migrate``, migrated or rolled back). Returns the proposal."""
        workspace = self.api.workspace
        policy = RetrainPolicy.load(workspace)
        options = self._policy_options(policy) if policy.auto_migrate else None
        proposal = get_proposal(workspace, proposal_id)
        active = self.api.collections.info(proposal["collection"]).model_version
        if proposal["status"] == OPEN and active != proposal["model_version"]:
            raise Conflict(f"proposal '{proposal_id}' was opened for {proposal['model_version']}"
                           f" but '{proposal['collection']}' now serves {active}",
                           "wait for the next drift check to open a new proposal")
        ref = self.api.models.resolve(candidate).ref
        evaluation = evaluate_candidate(self.api, active, ref, float(proposal["margin"]))
        status = ACCEPTED if evaluation["passed"] else REJECTED
        proposal = update_proposal(workspace, proposal_id, self.who, (OPEN,), status=status,
                                   candidate=ref, evaluation=evaluation)
        if status == ACCEPTED and options is not None:
            proposal, _ = self.migrate(proposal_id, options, executor, auto=True)
        return proposal

    def migrate(self, proposal_id: str, options: MigrateOptions | None = None,
                executor: Executor | None = None, auto: bool = False,
                collection: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Run (or resume) the migration of an accepted proposal to its candidate; returns the
        proposal (``migrated`` or ``rolled_back``) and the migration's final state.
        ``collection``, when given, must be the proposal's."""
        workspace = self.api.workspace
        proposal = self.check(proposal_id, collection)
        if proposal["status"] == ACCEPTED:
            proposal = update_proposal(workspace, proposal_id, self.who, (ACCEPTED,),
                                       status=MIGRATING, automatic=auto)
        try:
            state = self.migrations.run(proposal["collection"], proposal["candidate"],
                                        options, executor=executor)
        except EmbedopsError as exc:  # refused before or outside its gates: it may be rerun
            update_proposal(workspace, proposal_id, self.who, (MIGRATING,), status=ACCEPTED,
                            reason=f"migration refused: {exc.message}")
            raise
        done = state["step"] == DONE
        proposal = update_proposal(
            workspace, proposal_id, self.who, (MIGRATING,),
            status=MIGRATED if done else ROLLED_BACK, reason=state.get("reason"),
            golden=state.get("golden"))
        return proposal, state

    def check(self, proposal_id: str, collection: str | None = None) -> dict[str, Any]:
        """The proposal ``proposal_id`` if it can migrate now (accepted, or migrating after a
        crash) and is for ``collection`` (when given); else a clear error."""
        proposal = get_proposal(self.api.workspace, proposal_id)
        if collection is not None and collection != proposal["collection"]:
            raise InvalidInput(f"proposal '{proposal_id}' is for '{proposal['collection']}', "
                               f"not '{collection}'",
                               f"run 'embedops migrate {proposal['collection']} "
                               f"--from-proposal {proposal_id}'")
        if proposal["status"] == REJECTED:
            raise Conflict(f"proposal '{proposal_id}' was rejected: "
                           f"{proposal['evaluation']['reason']}",
                           "migrate to a model explicitly with 'embedops migrate COLLECTION "
                           "--to MODEL' if you want it anyway")
        if proposal["status"] not in (ACCEPTED, MIGRATING):  # open, migrated, rolled back
            raise Conflict(f"proposal '{proposal_id}' is {proposal['status']}; only an "
                           "accepted proposal migrates",
                           "accept it first: 'embedops proposals accept ID --candidate MODEL'"
                           if proposal["status"] == OPEN else None)
        return proposal

    @staticmethod
    def _policy_options(policy: RetrainPolicy) -> MigrateOptions:
        try:
            return MigrateOptions(**(policy.migrate or {}))
        except TypeError as exc:
            raise PolicyError(f"retrain policy 'migrate': {exc}",
                              "use the fields of a migration: golden_set, min_traffic, "
                              "canary_seconds, ...") from exc
        except InvalidInput as exc:
            raise PolicyError(f"retrain policy 'migrate': {exc.message}", exc.hint) from exc
