"""``embedops migrate`` and ``embedops feedback record|mine``: the closing steps of the loop.

``migrate`` changes a collection's model in one command (``lifecycle.migrate``): validation,
backfill, candidate index, golden gate, shadow, canary, promotion, finish, with automatic
rollback on a failed gate. Run it again after an interruption or a crash to continue.
"""

from __future__ import annotations

from typing import Any

import typer

from embedops.cli._common import print_json, workspace
from embedops.cli._ray import RAY_ADDRESS_OPTION, RAY_OPTION, RAY_WORKERS_OPTION


def register(app: typer.Typer) -> None:
    """Add ``migrate`` and the ``feedback`` group to ``app``."""
    _register_migrate(app)


def _register_migrate(app: typer.Typer) -> None:
    @app.command("migrate")
    def migrate(
        collection: str = typer.Argument(..., help="Collection name."),
        to: str | None = typer.Option(None, "--to", help="The new model version: name, "
                                      "name@N (omit to resume a migration)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Validate and print the plan "
                                     "with time and space estimates; change nothing."),
        golden: str | None = typer.Option(None, "--golden", help="Golden set of the quality "
                                          "gate (default: the one set bound to the "
                                          "collection)."),
        no_golden: bool = typer.Option(False, "--no-golden", help="Migrate without a golden "
                                       "set (no quality gate)."),
        golden_k: int = typer.Option(10, "--golden-k", help="Cut-off of the recall gate."),
        tolerance: float = typer.Option(0.02, "--recall-tolerance", help="The candidate's "
                                        "golden recall may be this much below the active's."),
        min_recall: float | None = typer.Option(None, "--min-recall", help="Absolute floor "
                                                "on the candidate's golden recall (0-1)."),
        max_p99_ms: float = typer.Option(1000.0, "--max-p99-ms", help="Gate: candidate p99."),
        max_error_ratio: float = typer.Option(0.01, "--max-error-ratio", help="Gate: share of "
                                              "candidate requests that may fail."),
        min_traffic: int = typer.Option(100, "--min-traffic", help="Candidate requests needed "
                                        "before promotion; 0 lets the golden gate decide alone "
                                        "(offline: no server, no traffic)."),
        shadow_s: float = typer.Option(0.0, "--shadow-seconds", help="Shadow phase length."),
        canary_s: float = typer.Option(60.0, "--canary-seconds", help="Longest canary phase "
                                       "(ends early once the gates pass)."),
        share: float = typer.Option(0.1, "--canary", help="Canary share of search traffic."),
        rate: str | None = typer.Option(None, "--rate", help="Backfill limit, e.g. 200/s."),
        batch: int = typer.Option(256, "--batch", hidden=True, help="Items per backfill "
                                  "transaction."),
        kind: str | None = typer.Option(None, "--kind", help="Candidate index kind (default: "
                                        "the active one's)."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
        ray: bool = RAY_OPTION,
        ray_address: str | None = RAY_ADDRESS_OPTION,
        ray_workers: int | None = RAY_WORKERS_OPTION,
    ) -> None:
        """Move COLLECTION to a new model with no downtime: validate, backfill, build and
        verify the candidate index, golden gate, shadow, canary, promote, finish. A failed
        gate rolls back automatically. Interrupted or crashed? Run it again: it continues.
        Without a server (no traffic) pass --min-traffic 0 --canary-seconds 0."""
        from embedops.engine import Embedops
        from embedops.engine.executors import batch_executor
        from embedops.engine.items import parse_rate
        from embedops.lifecycle.migrate import MigrateOptions, MigrationFailed, Migrations

        options = MigrateOptions(golden, golden_k, tolerance, min_recall, max_p99_ms,
                                 max_error_ratio, min_traffic, shadow_s, canary_s, share,
                                 parse_rate(rate), batch, kind, require_golden=not no_golden)

        def event(step: str, message: str) -> None:
            if not as_json:
                typer.echo(f"[{step}] {message}", err=True)

        api = Embedops(workspace())
        try:
            migrations = Migrations(api, who="cli", on_event=event)
            if dry_run:
                if not to:
                    raise typer.BadParameter("--dry-run needs --to MODEL")
                plan = migrations.plan(collection, to, options)
                if as_json:
                    print_json(plan.to_dict())
                else:
                    typer.echo("\n".join(plan.lines()))
                return
            with batch_executor(ray, ray_address, ray_workers) as executor:
                state = migrations.run(collection, to, options, executor=executor)
        finally:
            api.close()
        _show(state, as_json)
        if state["step"] == "rolled_back":
            raise MigrationFailed(f"migration of '{collection}' to {state['target']} was "
                                  f"rolled back: {state['reason']}",
                                  "the collection serves its previous version, as before")


def _show(state: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(state)
        return
    typer.echo(f"migration of '{state['collection']}' {state['source']} → {state['target']}: "
               f"{state['step']}" + (f" — {state['reason']}" if state.get("reason") else ""))
