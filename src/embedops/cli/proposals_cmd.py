"""``embedops proposals list|accept|train``: the retrain proposals that drift checks open.

``train`` makes the candidate of an open proposal as ``auto_train`` would (``lifecycle.
proposals.Proposals.advance``): trained on recent data plus mined feedback pairs, evaluated
against the golden set, accepted only when it beats the active model by the margin.

``accept`` names the candidate model made for a proposal and evaluates it
(``lifecycle.proposals``); with ``auto_migrate`` in the retrain policy an accepted proposal
migrates at once, otherwise ``embedops migrate COLLECTION --from-proposal ID`` runs it.
"""

from __future__ import annotations

from typing import Any

import typer

from embedops.cli._common import engine, print_json, workspace


def register(app: typer.Typer) -> None:
    """Add the ``proposals`` group to ``app``."""
    group = typer.Typer(help="Retrain proposals opened by drift checks: list them, accept a "
                        "candidate model (evaluated; migrated at once with auto_migrate).",
                        no_args_is_help=True)
    app.add_typer(group, name="proposals")

    @group.command("list")
    def list_(
        collection: str | None = typer.Option(None, "--collection", help="Only this one."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Every retrain proposal, oldest first, with its status."""
        from embedops.monitor.retrain import proposals

        rows = [p for p in proposals(workspace())
                if collection is None or p["collection"] == collection]
        if as_json:
            print_json(rows)
            return
        if not rows:
            typer.echo("no retrain proposals")
        for p in rows:
            typer.echo(f"{p['id']}  {p['collection']}  {p['status']}  from "
                       f"{p['model_version']}" + _candidate(p))

    @group.command("accept")
    def accept(
        proposal_id: str = typer.Argument(..., help="The proposal's id."),
        candidate: str = typer.Option(..., "--candidate", help="The model made for it "
                                      "(name@N), e.g. from 'embedops finetune ... --eval'."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Evaluate CANDIDATE for proposal PROPOSAL_ID: rejected, or accepted (then migrated
        at once when the policy says auto_migrate, else waiting for 'embedops migrate
        COLLECTION --from-proposal ID')."""
        from embedops.lifecycle.proposals import Proposals

        def event(step: str, message: str) -> None:
            if not as_json:
                typer.echo(f"[{step}] {message}", err=True)

        with engine() as api:
            proposal = Proposals(api, "cli", on_event=event).accept(proposal_id, candidate)
        if as_json:
            print_json(proposal)
            return
        typer.echo(f"proposal {proposal['id']}: {proposal['status']} — "
                   f"{proposal['evaluation']['reason']}")
        if proposal["status"] == "accepted":
            typer.echo(f"next: embedops migrate {proposal['collection']} --from-proposal "
                       f"{proposal['id']}")


    @group.command("train")
    def train(
        proposal_id: str = typer.Argument(..., help="The open proposal's id."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Make the candidate of open proposal PROPOSAL_ID now, with the policy's 'train'
        settings: train it on recent data plus mined feedback pairs, evaluate it against the
        golden set; accepted only when it beats the active model by the margin (then migrated
        at once when the policy says auto_migrate). Runs at the policy's 'nice'."""
        from embedops.lifecycle.proposals import Proposals, train_settings
        from embedops.lifecycle.worker import lower_priority
        from embedops.monitor.retrain import RetrainPolicy

        def event(step: str, message: str) -> None:
            if not as_json:
                typer.echo(f"[{step}] {message}", err=True)

        with engine() as api:
            lower_priority(train_settings(RetrainPolicy.load(api.workspace)).nice)
            proposal = Proposals(api, "cli", on_event=event).advance(proposal_id,
                                                                      automatic=False)
        if as_json:
            print_json(proposal)
            return
        typer.echo(f"proposal {proposal['id']}: {proposal['status']} — "
                   f"{proposal['evaluation']['reason']}")


def _candidate(proposal: dict[str, Any]) -> str:
    if not proposal.get("candidate"):
        return ""
    return f" → {proposal['candidate']}" + (
        f" ({proposal['reason']})" if proposal.get("reason") else "")
