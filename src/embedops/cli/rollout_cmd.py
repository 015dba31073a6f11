"""``embedops rollout start|status|promote|rollback|abort|finish``: roll a new model version out
on a collection (backfill, canary or shadow, gates, one-step promotion, rollback)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from embedops.cli._common import print_json, workspace
from embedops.cli._ray import RAY_ADDRESS_OPTION, RAY_OPTION, RAY_WORKERS_OPTION

if TYPE_CHECKING:
    from embedops.lifecycle import Rollouts


def _rollouts() -> Rollouts:
    from embedops.engine import Embedops
    from embedops.lifecycle import Rollouts

    return Rollouts(Embedops(workspace()), who="cli")


def _show(state: Any, as_json: bool) -> None:
    body = state if isinstance(state, dict) else state.to_dict()
    if as_json:
        print_json(body)
        return
    fill = body.get("backfill") or {}
    typer.echo(f"rollout of {body['candidate']} on {body['collection']} (previous "
               f"{body['previous']}): {body['phase']}"
               + (f" — {body['reason']}" if body.get("reason") else ""))
    typer.echo(f"mode {body['mode']}, share {body['share']}, backfill "
               f"{fill.get('done', 0)}/{fill.get('total', 0)}")
    for version, figures in (body.get("stats") or {}).items():
        typer.echo(f"  {version}: {figures['requests']} requests, {figures['errors']} errors, "
                   f"p99 {figures['p99_ms']} ms, overlap@k {figures['overlap']}")
    for check in (body.get("gates") or {}).get("checks", []):
        typer.echo(f"  gate {check['name']}: {check['status']} ({check['detail']})")


def register(app: typer.Typer) -> None:
    """Add the ``rollout`` group to ``app``."""
    group = typer.Typer(help="Roll a new model version out: backfill, canary/shadow, gates, "
                             "promote, roll back.", no_args_is_help=True)
    app.add_typer(group, name="rollout")
    _register_start(group)
    _register_switches(group)


def _register_start(group: typer.Typer) -> None:
    @group.command("start")
    def start(
        collection: str = typer.Argument(..., help="Collection name."),
        model: str = typer.Option(..., "--model", help="The new version: name, name@N."),
        canary: float = typer.Option(0.1, "--canary", help="Share of search traffic (0-1]."),
        shadow: bool = typer.Option(False, "--shadow", help="Run it beside the active version "
                                    "and compare; answer with the active one."),
        rate: str | None = typer.Option(None, "--rate", help="Backfill limit, e.g. 200/s."),
        golden: str | None = typer.Option(None, "--golden", help="Golden set for the recall "
                                          "gate."),
        golden_k: int = typer.Option(10, "--golden-k", help="Cut-off of the recall gate."),
        tolerance: float = typer.Option(0.02, "--recall-tolerance", help="Gate: the "
                                        "candidate's golden recall may be this much lower."),
        max_p99_ms: float = typer.Option(1000.0, "--max-p99-ms", help="Gate: the candidate's "
                                         "p99 search latency, in ms."),
        max_error_ratio: float = typer.Option(0.01, "--max-error-ratio", help="Gate: share of "
                                              "candidate requests that may fail."),
        min_requests: int = typer.Option(100, "--min-requests", help="Gate: candidate "
                                         "requests seen before it may be promoted."),
        index_kind: str | None = typer.Option(None, "--kind", help="Candidate index kind: "
                                              "flat, hnsw, ivf, ivfpq or sq8 (default: the "
                                              "active one's)."),
        old_index_kind: str | None = typer.Option(None, "--index", hidden=True,
                                                  help="Old spelling of --kind."),
        no_backfill: bool = typer.Option(False, "--no-backfill", help="Only start; a server "
                                         "or a later 'rollout start' runs the backfill."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
        ray: bool = RAY_OPTION,
        ray_address: str | None = RAY_ADDRESS_OPTION,
        ray_workers: int | None = RAY_WORKERS_OPTION,
    ) -> None:
        """Start (or resume) a rollout: dual write begins, the backfill runs here with a
        progress bar (Ctrl-C is safe: run it again to resume), then the candidate serves."""
        from embedops.engine.executors import batch_executor
        from embedops.engine.items import parse_rate
        from embedops.lifecycle import GateConfig
        from embedops.lifecycle.rollout import BACKFILLING

        rollouts = _rollouts()
        try:
            state = rollouts.store.get(collection)
            if state is None or state.phase != BACKFILLING:
                gates = GateConfig(golden, golden_k, recall_tolerance=tolerance,
                                   max_p99_ms=max_p99_ms, max_error_ratio=max_error_ratio,
                                   min_requests=min_requests)
                state = rollouts.start(collection, model, "shadow" if shadow else "canary",
                                       canary, parse_rate(rate), gates,
                                       index_kind or old_index_kind)
            if not no_backfill:
                with batch_executor(ray, ray_address, ray_workers) as executor:
                    if executor is not None:  # the bulk on Ray; run_backfill catches up here
                        rollouts.api.backfill(collection, state.candidate, state.rate,
                                              quiet=None, executor=executor)
                state = rollouts.run_backfill(collection)
        finally:
            rollouts.api.close()
        _show(state, as_json)


def _register_switches(group: typer.Typer) -> None:
    as_json_opt = typer.Option(False, "--json", help="Machine-readable output.")
    collection_arg = typer.Argument(..., help="Collection name.")
    reason_help = "Why (kept in the rollout state and the audit log)."

    @group.command("status")
    def status(collection: str = collection_arg, as_json: bool = as_json_opt) -> None:
        """Phase, backfill progress, per-version figures and gates (a canary whose gates broke
        is rolled back now)."""
        rollouts = _rollouts()
        try:
            _show(rollouts.status(collection), as_json)
        finally:
            rollouts.api.close()

    @group.command("promote")
    def promote(collection: str = collection_arg,
                force: bool = typer.Option(False, "--force", help="Skip the gates (audited)."),
                as_json: bool = as_json_opt) -> None:
        """Make the candidate the active version in one step, once its gates hold."""
        _step(lambda r: r.promote(collection, force), as_json)

    @group.command("rollback")
    def rollback(collection: str = collection_arg,
                 reason: str = typer.Option("rolled back by hand", "--reason", help=reason_help),
                 as_json: bool = as_json_opt) -> None:
        """Serve the previous version again (before or after promotion)."""
        _step(lambda r: r.rollback(collection, reason), as_json)

    @group.command("abort")
    def abort(collection: str = collection_arg,
              reason: str = typer.Option("aborted by hand", "--reason", help=reason_help),
              as_json: bool = as_json_opt) -> None:
        """Stop a rollout before promotion; the active version never changed."""
        _step(lambda r: r.abort(collection, reason), as_json)

    @group.command("finish")
    def finish(collection: str = collection_arg, as_json: bool = as_json_opt) -> None:
        """End a promoted rollout: stop writing the previous version."""
        _step(lambda r: r.finish(collection), as_json)


def _step(fn: Any, as_json: bool) -> None:
    rollouts = _rollouts()
    try:
        _show(fn(rollouts), as_json)
    finally:
        rollouts.api.close()
