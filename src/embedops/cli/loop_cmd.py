"""``embedops migrate`` and ``embedops feedback record|queries|mine``: the closing steps of the
loop (``embedops proposals`` is in ``proposals_cmd``).

``migrate`` changes a collection's model in one command (``lifecycle.migrate``): validation,
backfill, candidate index, golden gate, shadow, canary, promotion, finish, with automatic
rollback on a failed gate. Run it again after an interruption or a crash to continue.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import typer

from embedops.cli._common import print_json, workspace
from embedops.cli._ray import RAY_ADDRESS_OPTION, RAY_OPTION, RAY_WORKERS_OPTION
from embedops.errors import InvalidInput


def register(app: typer.Typer) -> None:
    """Add ``migrate`` and the ``feedback`` and ``proposals`` groups to ``app``."""
    from embedops.cli import proposals_cmd

    _register_migrate(app)
    proposals_cmd.register(app)
    feedback = typer.Typer(help="User feedback on search results: record it, mine it into "
                           "golden-set candidates and fine-tuning pairs.",
                           no_args_is_help=True)
    app.add_typer(feedback, name="feedback")
    _register_feedback(feedback)


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
        nice: int = typer.Option(10, "--nice", min=0, max=19, help="CPU niceness of the "
                                 "migration's work (0-19): searches served on this machine "
                                 "go first; 19 adds Linux's SCHED_IDLE (only spare CPU); 0 "
                                 "runs it at normal priority."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
        ray: bool = RAY_OPTION,
        ray_address: str | None = RAY_ADDRESS_OPTION,
        ray_workers: int | None = RAY_WORKERS_OPTION,
        from_proposal: str | None = typer.Option(None, "--from-proposal", help="Migrate to "
                                                 "the candidate of this accepted retrain "
                                                 "proposal (see 'embedops proposals list')."),
    ) -> None:
        """Move COLLECTION to a new model with no downtime: validate, backfill, build and
        verify the candidate index, golden gate, shadow, canary, promote, finish. A failed
        gate rolls back automatically. Interrupted or crashed? Run it again: it continues.
        Without a server (no traffic) pass --min-traffic 0 --canary-seconds 0."""
        from embedops.engine import Embedops
        from embedops.engine.executors import batch_executor
        from embedops.engine.items import parse_rate
        from embedops.lifecycle.migrate import MigrateOptions, MigrationFailed, Migrations
        from embedops.lifecycle.proposals import Proposals

        if from_proposal and to:
            raise InvalidInput("--from-proposal takes the model from the proposal",
                               "leave out --to")

        options = MigrateOptions(golden, golden_k, tolerance, min_recall, max_p99_ms,
                                 max_error_ratio, min_traffic, shadow_s, canary_s, share,
                                 parse_rate(rate), batch, kind, require_golden=not no_golden,
                                 nice=nice)

        def event(step: str, message: str) -> None:
            if not as_json:
                typer.echo(f"[{step}] {message}", err=True)

        api = Embedops(workspace())
        try:
            migrations = Migrations(api, who="cli", on_event=event)
            if dry_run:
                target = (Proposals(api).check(from_proposal, collection)["candidate"]
                          if from_proposal else to)
                if not target:
                    raise typer.BadParameter("--dry-run needs --to MODEL or --from-proposal")
                plan = migrations.plan(collection, target, options)
                if as_json:
                    print_json(plan.to_dict())
                else:
                    typer.echo("\n".join(plan.lines()))
                return
            with batch_executor(ray, ray_address, ray_workers) as executor:
                if from_proposal:
                    _, state = Proposals(api, "cli", on_event=event).migrate(
                        from_proposal, options, executor, collection=collection)
                else:
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


def _read_events(path: Path) -> list[dict[str, Any]]:
    """Events from a JSONL file (one object a line, the fields of the HTTP route)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from exc
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{path}, line {number}: not valid JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise InvalidInput(f"{path}, line {number}: expected a JSON object",
                               '{"query_id": ..., "kind": "click", "item_id": ...}')
        out.append(row)
    if not out:
        raise InvalidInput(f"{path} holds no events")
    return out


def _event(row: dict[str, Any], where: str) -> Any:
    from embedops.monitor.feedback import FeedbackEvent

    known = {"event_id", "query_id", "kind", "item_id", "value", "shown", "query",
             "model_version"}
    unknown = sorted(set(row) - known)
    if unknown:
        raise InvalidInput(f"{where}: unknown fields {unknown}", f"fields: {sorted(known)}")
    missing = [k for k in ("query_id", "kind", "item_id") if not row.get(k)]
    if missing:
        raise InvalidInput(f"{where}: missing {missing}")
    shown = row.get("shown") or []
    if not isinstance(shown, list):
        raise InvalidInput(f"{where}: 'shown' must be a list of ids")
    return FeedbackEvent(str(row.get("event_id") or uuid.uuid4().hex), str(row["query_id"]),
                         str(row["kind"]), str(row["item_id"]), row.get("value"),
                         tuple(str(i) for i in shown), row.get("query"),
                         row.get("model_version"))


def _register_feedback(feedback: typer.Typer) -> None:
    @feedback.command("record")
    def record(
        collection: str = typer.Argument(..., help="Collection name."),
        query_id: str | None = typer.Option(None, "--query-id", help="The search answer's "
                                            "query_id."),
        kind: str | None = typer.Option(None, "--kind", help="click, dwell, thumbs or grade."),
        item: str | None = typer.Option(None, "--item", help="The hit the user acted on."),
        value: float | None = typer.Option(None, "--value", help="dwell: seconds; thumbs: 1 "
                                           "or -1; grade: 0-3; click: none."),
        shown: str | None = typer.Option(None, "--shown", help="Hit ids as displayed, best "
                                         "first, comma-separated (gives hard negatives)."),
        query: str | None = typer.Option(None, "--query", help="Query text (stored only if "
                                         "the collection allows it; redacted)."),
        model_version: str | None = typer.Option(None, "--model-version", help="The answer's "
                                                 "model_version."),
        event_id: str | None = typer.Option(None, "--event-id", help="Event id (default: a "
                                            "new one); a repeat is counted once."),
        from_file: Path | None = typer.Option(None, "--file", help="JSONL of events (fields "
                                              "as in the HTTP route) instead of the options."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Record feedback on a search answer of COLLECTION: one event from the options, or
        many from --file. Idempotent per event id."""
        from embedops.engine import Embedops
        from embedops.monitor.db import MonitorDB
        from embedops.monitor.feedback import Feedback

        if from_file is not None:
            events = [_event(row, f"{from_file}, event {n}")
                      for n, row in enumerate(_read_events(from_file), start=1)]
        else:
            row = {"event_id": event_id, "query_id": query_id, "kind": kind, "item_id": item,
                   "value": value, "query": query, "model_version": model_version,
                   "shown": [i.strip() for i in (shown or "").split(",") if i.strip()]}
            events = [_event(row, "the options")]
        api = Embedops(workspace())
        db = MonitorDB(api.workspace, api)
        try:
            counts = Feedback(api, db).record(collection, events)
        finally:
            db.close()
            api.close()
        if as_json:
            print_json({"collection": collection, **counts})
        else:
            typer.echo(f"recorded {counts['written']} of {counts['received']} events "
                       f"({counts['duplicates']} already recorded)")

    @feedback.command("queries")
    def queries(
        collection: str = typer.Argument(..., help="Collection name."),
        allow: bool = typer.Option(..., "--allow/--deny", help="Store query texts with "
                                   "feedback (redacted; sealed when encrypted), or stop."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Allow or refuse storing query texts with COLLECTION's feedback (mining needs
        them; the default is to refuse)."""
        from embedops.engine import Embedops
        from embedops.monitor.db import MonitorDB
        from embedops.monitor.feedback import Feedback

        api = Embedops(workspace())
        db = MonitorDB(api.workspace, api)
        try:
            Feedback(api, db).allow_queries(collection, allow)
        finally:
            db.close()
            api.close()
        if as_json:
            print_json({"collection": collection, "store_queries": allow})
        else:
            typer.echo(f"'{collection}' {'stores' if allow else 'does not store'} query texts")

    @feedback.command("mine")
    def mine(
        collection: str = typer.Argument(..., help="Collection name."),
        out: Path = typer.Option(..., "--out", help="Folder for golden_candidates.jsonl, "
                                 "pairs_train.jsonl and pairs_heldout.jsonl."),
        min_evidence: int = typer.Option(2, "--min-evidence", help="Positive events an item "
                                         "needs (net of negative ones) to count as relevant."),
        holdout: float = typer.Option(0.2, "--holdout", help="Share of queries kept back for "
                                      "evaluation, in [0, 1)."),
        max_negatives: int = typer.Option(3, "--max-negatives", help="Hard negatives per "
                                          "positive (hits shown above it, not chosen)."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Mine COLLECTION's feedback into golden-set candidates (review them, then
        'embedops golden import') and fine-tuning pairs with hard negatives ('embedops
        finetune PARENT OUT/pairs_train.jsonl --name NEW --eval OUT/pairs_heldout.jsonl')."""
        from embedops.engine import Embedops
        from embedops.monitor.db import MonitorDB
        from embedops.monitor.feedback import Feedback, write_mined

        api = Embedops(workspace())
        db = MonitorDB(api.workspace, api)
        try:
            mined = Feedback(api, db).mine(collection, min_evidence, holdout, max_negatives)
        finally:
            db.close()
            api.close()
        paths = write_mined(mined, out)
        if as_json:
            print_json({"collection": collection, "counts": mined.counts(), "files": paths})
            return
        counts = mined.counts()
        typer.echo(f"{counts['candidates']} golden candidates → {paths['candidates']}")
        typer.echo(f"{counts['train']} training pairs → {paths['train']}; "
                   f"{counts['heldout']} held out → {paths['heldout']}")
        if counts["skipped_no_query"]:
            typer.echo(f"{counts['skipped_no_query']} events without a stored query were "
                       "skipped (see 'embedops feedback queries --allow')", err=True)
