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

``advance`` makes the candidate itself (``auto_train`` in the policy; ``lifecycle.candidate``):
trained on recent data plus mined feedback pairs, evaluated against the golden set (recall of
the candidate and the active model over the same items), accepted only when it beats the
active model by the proposal's margin, then migrated when ``auto_migrate`` says so. The drift
scheduler starts it for a new proposal in a background worker process
(``start_candidate``); ``embedops proposals train ID`` runs it by hand. Every step is audited:
``retrain.training``, ``retrain.trained`` (or ``retrain.train_failed``),
``retrain.accepted``/``retrain.rejected`` with the evaluation, then the migration's own.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from embedops.config import Workspace
from embedops.engine import Embedops, audit
from embedops.engine.executors import Executor
from embedops.errors import Conflict, EmbedopsError, InvalidInput
from embedops.fsio import file_lock
from embedops.lifecycle.gates import bound_golden_set
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

if TYPE_CHECKING:
    from embedops.lifecycle.candidate import TrainSettings

_T = TypeVar("_T")
METRIC = "recall@10"
WORKER_LOG = "retrain_worker.log"


def start_candidate(workspace: Workspace, proposal: dict[str, Any], who: str = "scheduler"
                    ) -> subprocess.Popen[bytes] | None:
    """Start making ``proposal``'s candidate (``Proposals.advance``) in a background worker
    process when the policy says ``auto_train``; returns the process, or None (switched off).
    Its output is appended to ``retrain_worker.log`` in the workspace home."""
    from embedops.lifecycle.worker import spawn

    policy = RetrainPolicy.load(workspace)
    if not (policy.auto_train and policy.applies_to(str(proposal["collection"]))):
        return None
    settings = train_settings(policy)
    return spawn({"job": "candidate", "home": str(workspace.home), "proposal": proposal["id"],
                  "who": who, "nice": settings.nice}, workspace.home / WORKER_LOG)


def _policy_object(kind: type[_T], key: str, value: dict[str, Any] | None, fields: str) -> _T:
    """The policy's ``key`` object as ``kind``; an unknown field or a bad value is a
    PolicyError naming the policy key (``fields`` lists the accepted ones)."""
    try:
        return kind(**(value or {}))
    except TypeError as exc:
        raise PolicyError(f"retrain policy '{key}': {exc}", f"use the fields of {fields}, ..."
                          ) from exc
    except InvalidInput as exc:
        raise PolicyError(f"retrain policy '{key}': {exc.message}", exc.hint) from exc


def train_settings(policy: RetrainPolicy) -> TrainSettings:
    """The policy's ``train`` object as ``lifecycle.candidate.TrainSettings``."""
    from embedops.lifecycle.candidate import TrainSettings

    return _policy_object(TrainSettings, "train", policy.train,
                          "a retrain: method, params, golden_set, min_evidence, min_pairs")


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


@contextlib.contextmanager
def _training_lock(workspace: Workspace) -> Iterator[None]:
    """Held while a candidate is trained: a second one at the same time is refused at once."""
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(file_lock(workspace.home / "retrain_training.lock", wait=False))
        except BlockingIOError:
            raise Conflict("a retrain candidate is being trained by another process",
                           "wait for it to end; 'embedops proposals list' shows where each "
                           "proposal stands") from None
        yield


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

    def advance(self, proposal_id: str, automatic: bool = True) -> dict[str, Any]:
        """Make, evaluate and (with ``auto_migrate``) migrate the candidate of the open
        proposal ``proposal_id`` (module doc). ``automatic`` (the scheduler's worker) does
        nothing when the policy no longer says ``auto_train``. One candidate is trained at a
        time per workspace. Returns the proposal."""
        workspace = self.api.workspace
        policy = RetrainPolicy.load(workspace)
        proposal = get_proposal(workspace, proposal_id)
        if automatic and not (policy.auto_train and policy.applies_to(proposal["collection"])):
            return proposal  # switched off since the proposal was opened
        with _training_lock(workspace):
            proposal = get_proposal(workspace, proposal_id)
            if proposal["status"] != OPEN:
                raise Conflict(f"retrain proposal '{proposal_id}' is {proposal['status']}; "
                               "only an open proposal gets a candidate",
                               "see 'embedops proposals list' for where it stands")
            return self._advance(proposal, policy, automatic)

    def _advance(self, proposal: dict[str, Any], policy: RetrainPolicy, automatic: bool
                 ) -> dict[str, Any]:
        from embedops.lifecycle.candidate import golden_evaluation, golden_queries, train_candidate

        workspace, proposal_id = self.api.workspace, str(proposal["id"])
        collection, active = proposal["collection"], proposal["model_version"]
        settings = train_settings(policy)
        options = self._policy_options(policy) if policy.auto_migrate else None
        trail = {"collection": collection, "proposal": proposal_id, "automatic": automatic}
        try:
            self._check_active(proposal)
            golden_set = self._golden_set(collection, settings.golden_set or (
                policy.migrate or {}).get("golden_set"))
            golden = golden_queries(self.api, golden_set)
            audit.record(workspace, "retrain.training", self.who, **trail, active=active,
                         method=settings.method, golden_set=golden_set)
            made, summary = train_candidate(self.api, collection, active, settings, golden)
            audit.record(workspace, "retrain.trained", self.who, **trail, candidate=made.ref,
                         **summary)
            evaluation = golden_evaluation(self.api, collection, active, made.ref, golden_set,
                                           golden, settings.golden_k, float(proposal["margin"]),
                                           settings.eval_items)
        except EmbedopsError as exc:
            audit.record(workspace, "retrain.train_failed", self.who, **trail,
                         reason=exc.message)
            update_proposal(workspace, proposal_id, self.who, (OPEN,),
                            reason=f"candidate not made: {exc.message}")
            raise
        status = ACCEPTED if evaluation["passed"] else REJECTED
        proposal = update_proposal(workspace, proposal_id, self.who, (OPEN,), status=status,
                                   candidate=made.ref, evaluation=evaluation, training=summary,
                                   automatic=automatic)
        self.migrations.on_event(status, evaluation["reason"])
        if status == ACCEPTED and options is not None:
            proposal, _ = self.migrate(proposal_id, options, auto=True)
        return proposal

    def _check_active(self, proposal: dict[str, Any]) -> None:
        active = self.api.collections.info(proposal["collection"]).model_version
        if active != proposal["model_version"]:
            raise Conflict(f"proposal '{proposal['id']}' was opened for "
                           f"{proposal['model_version']} but '{proposal['collection']}' now "
                           f"serves {active}",
                           "wait for the next drift check to open a new proposal")

    def _golden_set(self, collection: str, named: str | None) -> str:
        """``named``, or the one golden set bound to ``collection``."""
        if named:
            return named
        return bound_golden_set(
            self.api, collection,
            f"evaluating a candidate for '{collection}' needs one golden set",
            'name one in the retrain policy: "train": {"golden_set": NAME}')

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
        return _policy_object(MigrateOptions, "migrate", policy.migrate,
                              "a migration: golden_set, min_traffic, canary_seconds")
