"""``embedops golden create|add|import|list|run|history|layers``, ``embedops drift`` and
``embedops compare``: evaluation and monitoring from the command line."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from embedops.cli._common import engine, positive, print_json, workspace
from embedops.errors import InvalidInput

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
KOpt = Annotated[list[int] | None, typer.Option("-k", help="Cut-off (repeatable).")]
SetArg = Annotated[str, typer.Argument(metavar="SET", help="Golden set name.")]
CollectionArg = Annotated[str, typer.Argument(help="Collection name.")]
VersionOpt = Annotated[str | None, typer.Option(
    "--model-version", help="Model version to search with (default: the collection's active "
    "one; the rollout candidate may be named).")]


def _db() -> Any:
    from embedops.monitor.db import MonitorDB

    return MonitorDB(workspace())


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def register(app: typer.Typer) -> None:
    """Add the ``golden`` group and the ``drift`` and ``compare`` commands to ``app``."""
    golden = typer.Typer(help="Golden query sets: store them, run them, keep their history.",
                         no_args_is_help=True)
    app.add_typer(golden, name="golden")
    _register_sets(golden)
    _register_runs(golden)
    app.command("drift")(drift)
    app.command("compare")(compare)


def _register_sets(golden: typer.Typer) -> None:
    @golden.command("create")
    def create(
        name: Annotated[str, typer.Argument(help="Name of the new set (letters, digits, _ . -).")],
        collection: Annotated[str | None, typer.Option(
            "--collection", help="Collection the server's scheduler evaluates it on.")] = None,
        description: Annotated[str, typer.Option("--description",
                                                 help="What the set checks.")] = "",
        as_json: JsonOpt = False,
    ) -> None:
        """Create an empty golden query set."""
        info = _db().create_set(name, collection, description)
        if as_json:
            print_json(info.to_dict())
            return
        typer.echo(f"created golden set {info.name}")

    @golden.command("add")
    def add(
        name: Annotated[str, typer.Argument(help="Golden set name.")],
        query: Annotated[str, typer.Argument(help="The query text.")],
        relevant: Annotated[list[str] | None, typer.Option(
            "--relevant", "-r", help="A relevant id (grade 1); repeatable.")] = None,
        grade: Annotated[list[str] | None, typer.Option(
            "--grade", help="ID=GRADE for graded relevance; repeatable.")] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Add one query with its relevant ids."""
        from embedops.monitor.golden import grades_from_options, make_query

        q = make_query(query, grades_from_options(relevant or [], grade or []))
        count = _db().add_queries(name, [q])
        if as_json:
            print_json({"set": name, "added": 1, "queries": count})
            return
        typer.echo(f"{name}: {count} queries")

    @golden.command("import")
    def import_(
        name: Annotated[str, typer.Argument(help="Golden set name (created if it is new).")],
        path: Annotated[Path, typer.Argument(
            help='JSONL file: {"query": ..., "relevant": [ids] or {id: grade}} per line.')],
        collection: Annotated[str | None, typer.Option(
            "--collection", help="For a new set: the collection the server's scheduler "
            "evaluates it on.")] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Add queries from a JSONL file of {"query", "relevant": list of ids or {id: grade}};
        the set is created first when it does not exist yet."""
        from embedops.monitor.golden import read_jsonl

        queries = read_jsonl(path)
        db = _db()
        created = name not in {s.name for s in db.list_sets()}
        if created:
            db.create_set(name, collection, f"imported from {path.name}")
        count = db.add_queries(name, queries)
        if as_json:
            print_json({"set": name, "created": created, "imported": len(queries),
                        "queries": count})
            return
        typer.echo(f"{'created golden set ' + name + '; ' if created else ''}imported "
                   f"{len(queries)} queries into {name} ({count} in all)")

    @golden.command("list")
    def list_(as_json: JsonOpt = False) -> None:
        """List golden sets with their query counts."""
        sets = _db().list_sets()
        if as_json:
            print_json([s.to_dict() for s in sets])
            return
        for s in sets:
            typer.echo(f"{s.name}\t{s.n_queries} queries\t{s.collection or '-'}\t{s.description}")
        if not sets:
            typer.echo("no golden sets yet (embedops golden create NAME)")


def _register_runs(golden: typer.Typer) -> None:
    @golden.command("run")
    def run(
        collection: CollectionArg, set_name: SetArg,
        k: KOpt = None,
        mode: Annotated[str, typer.Option("--mode", help="dense, lexical, hybrid or two_stage "
                                          "(two-stage also accepted).")] = "dense",
        model_version: VersionOpt = None,
        min_recall: Annotated[list[str] | None, typer.Option(
            "--min-recall", help="Gate: K=MIN exits 1 if recall@K < MIN (e.g. 10=0.6; "
            "repeatable); a bare MIN gates every k of the run.")] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Evaluate a golden set on a collection and store the run (a CI gate with
        --min-recall)."""
        from embedops.monitor.golden import (
            QualityGateFailed,
            check_gate,
            check_gate_ks,
            parse_recall_gates,
            run_golden,
        )

        gates = parse_recall_gates(min_recall or [])
        ks = check_gate_ks(gates, k or [10])
        with engine() as api:
            record = run_golden(api, _db(), collection, set_name, ks, mode, model_version)
        failed = check_gate(record, gates or None)
        if as_json:
            print_json({**record.to_dict(), "gate_failures": failed})
        else:
            typer.echo(f"run {record.id}: {set_name} on {collection} ({record.model_version}, "
                       f"snapshot {record.snapshot}), {record.n_queries} queries")
            for key, value in sorted(record.scores.items()):
                typer.echo(f"  {key:<14} {value:.4f}")
        if failed:
            raise QualityGateFailed("quality gate failed: " + "; ".join(failed),
                                    f"the run is stored (id {record.id}); see 'embedops golden "
                                    f"history {set_name}'")

    @golden.command("history")
    def history(
        set_name: SetArg,
        collection: Annotated[str | None, typer.Option(
            "--collection", help="Only runs on this collection.")] = None,
        limit: Annotated[int, typer.Option("--limit", help="How many runs, newest first.")] = 20,
        as_json: JsonOpt = False,
    ) -> None:
        """Past runs of a golden set, newest first."""
        runs = _db().runs(set_name, collection, positive("--limit", limit))
        if as_json:
            print_json([r.to_dict() for r in runs])
            return
        for r in runs:
            scores = " ".join(f"{k}={v:.3f}" for k, v in sorted(r.scores.items())
                              if not k.startswith("precision"))
            typer.echo(f"{r.id}\t{_when(r.created_at)}\t{r.collection}\t{r.model_version}\t"
                       f"{r.snapshot}\t{r.params.get('mode')}\t{scores}")

    @golden.command("layers")
    def layers(
        collection: CollectionArg, set_name: SetArg,
        k: Annotated[int, typer.Option("-k", help="Cut-off of the recall figures.")] = 10,
        model_version: VersionOpt = None,
        reference: Annotated[str | None, typer.Option(
            "--reference-version", help="Another model version to measure the model layer.")
        ] = None,
        snapshot: Annotated[str | None, typer.Option(
            "--snapshot", help="An older snapshot of the index to compare with the served one.")
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Recall lost by each layer (model, quantization, ANN) on a golden set."""
        from embedops.monitor.layers import recall_by_layer

        with engine() as api:
            report = recall_by_layer(api, _db(), collection, set_name, positive("-k", k),
                                     model_version, reference, snapshot)
        if as_json:
            print_json(report.to_dict())
        else:
            typer.echo(report.table())


_SIDE_HELP = {
    "since": "Start of the {side} time window: ISO time, epoch seconds or age (7d, 12h).",
    "until": "End of the {side} time window (exclusive): ISO time, epoch seconds or age.",
    "rows": "The {side} side as a row range START:STOP of the collection's items in "
            "insertion order (0:500, 500:, -200:).",
    "ids": "The {side} side as an explicit set of item ids: a file, one id per line (or "
           ".jsonl with 'id').",
    "texts": "The {side} side as texts to embed: .txt lines or .jsonl 'text'.",
}


def _side_opt(side: str, what: str) -> Any:
    return typer.Option(f"--{side}-{what}" if what != "texts" else f"--{side}",
                        help=_SIDE_HELP[what].format(side=side))


def drift(
    collection: CollectionArg,
    reference_since: Annotated[str | None, _side_opt("reference", "since")] = None,
    reference_until: Annotated[str | None, _side_opt("reference", "until")] = None,
    reference_rows: Annotated[str | None, _side_opt("reference", "rows")] = None,
    reference_ids: Annotated[Path | None, _side_opt("reference", "ids")] = None,
    reference: Annotated[Path | None, _side_opt("reference", "texts")] = None,
    current_since: Annotated[str | None, _side_opt("current", "since")] = None,
    current_until: Annotated[str | None, _side_opt("current", "until")] = None,
    current_rows: Annotated[str | None, _side_opt("current", "rows")] = None,
    current_ids: Annotated[Path | None, _side_opt("current", "ids")] = None,
    current: Annotated[Path | None, _side_opt("current", "texts")] = None,
    time_field: Annotated[str, typer.Option(
        "--time-field", help="Item time the windows use: updated_at or created_at.")
    ] = "updated_at",
    config: Annotated[Path | None, typer.Option(
        "--config", help="JSON of DriftConfig thresholds.")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Write the HTML report here.")
                    ] = None,
    fail_on_drift: Annotated[bool, typer.Option("--fail-on-drift", help="Exit 1 on drift.")
                             ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Is the current side distributed like the reference? Each side is a time window, a row
    range, a set of ids (stored vectors) or a file of texts (embedded now)."""
    from embedops.monitor.checks import collection_drift
    from embedops.monitor.report import summary_lines, write_html

    ref_side = _side("reference", reference, reference_since, reference_until, reference_rows,
                     reference_ids, time_field)
    cur_side = _side("current", current, current_since, current_until, current_rows,
                     current_ids, time_field)
    with engine() as api:
        result = collection_drift(api, collection, ref_side, cur_side, _drift_config(config),
                                  db=_db())
    if html is not None:
        write_html(html, result.report, result.reference, result.current,
                   f"Drift of {collection} ({result.model_version})")
    if as_json:
        print_json(result.report.to_dict())
    else:
        for line in summary_lines(result.report):
            typer.echo(line)
        if html is not None:
            typer.echo(f"report written to {html}")
    if fail_on_drift and result.report.drifted:
        from embedops.monitor.golden import QualityGateFailed

        raise QualityGateFailed(f"drift in '{collection}': " + "; ".join(result.report.reasons))


def _side(name: str, path: Path | None, since: str | None, until: str | None,
          rows: str | None, ids: Path | None, field: str) -> Any:
    """One drift side from its options: exactly one of texts, window, rows or ids."""
    from embedops.monitor.checks import Ids, Rows, Window
    from embedops.monitor.probe import parse_rows, parse_time, read_ids, read_texts

    given = [opt for opt, value in ((f"--{name}", path), (f"--{name}-rows", rows),
                                    (f"--{name}-ids", ids)) if value is not None]
    if since is not None or until is not None:
        given.append(f"--{name}-since/--{name}-until")
    if len(given) > 1:
        raise InvalidInput(f"the {name} side is given twice ({' and '.join(given)})",
                           "give one of them")
    if not given:
        raise InvalidInput(f"the {name} side is not given",
                           f"pass --{name}-rows START:STOP, --{name}-ids FILE, --{name} FILE "
                           f"or --{name}-since / --{name}-until")
    if path is not None:
        return read_texts(path)
    if rows is not None:
        return Rows(*parse_rows(rows))
    if ids is not None:
        return Ids(tuple(read_ids(ids)))
    return Window(parse_time(since), parse_time(until), field)


def _drift_config(path: Path | None) -> Any:
    import json

    from embedops.monitor.drift import DriftConfig

    if path is None:
        return DriftConfig()
    try:
        return DriftConfig(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as exc:
        raise InvalidInput(f"cannot read drift thresholds from {path}: {exc}",
                           'write JSON like {"mmd_pvalue": 0.01, "psi": 0.2}') from exc


def compare(
    a: Annotated[str, typer.Argument(help="Model version A (the old one), name@N.")],
    b: Annotated[str, typer.Argument(help="Model version B (the new one).")],
    probe: Annotated[Path | None, typer.Option(
        "--probe", help="Probe texts file (.txt lines or .jsonl 'text').")] = None,
    collection: Annotated[str | None, typer.Option(
        "--collection", help="Sample probe texts from this collection.")] = None,
    sample: Annotated[int, typer.Option(
        "--sample", help="How many texts to sample from --collection.")] = 1000,
    k: Annotated[int, typer.Option("-k", help="Neighbours compared per probe text.")] = 10,
    golden: Annotated[str | None, typer.Option(
        "--golden", help="Golden set: recall of each version (needs --collection).")] = None,
    save_map: Annotated[Path | None, typer.Option(
        "--save-map", help="Save the A→B Procrustes map (safetensors).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """kNN overlap@k, Spearman of similarities, Procrustes residual (and golden deltas) of two
    model versions."""
    from embedops.monitor.checks import compare_models
    from embedops.monitor.probe import read_texts, sample_texts

    if probe is None and collection is None:
        raise InvalidInput("no probe texts", "pass --probe FILE or --collection C")
    if golden and not collection:
        raise InvalidInput("--golden needs --collection (the set is searched there)")
    with engine() as api:
        texts = read_texts(probe) if probe else sample_texts(api, str(collection), sample)
        result = compare_models(api, a, b, texts, positive("-k", k),
                                (_db(), golden, collection) if golden and collection else None)
    if save_map is not None:
        result.alignment.save(save_map)
    if as_json:
        print_json(result.to_dict())
        return
    c = result.comparison
    typer.echo(f"{c.version_a} vs {c.version_b} on {c.n_probe} probe texts (k={c.k}):")
    typer.echo(f"  kNN overlap@{c.k}        {c.knn_overlap:.4f}")
    typer.echo(f"  similarity Spearman   {c.similarity_spearman:.4f}")
    typer.echo(f"  Procrustes residual   {c.procrustes_residual:.4f}")
    typer.echo(f"  aligned kNN overlap   {c.aligned_knn_overlap:.4f}")
    for ref, scores in (result.golden or {}).items():
        typer.echo(f"  golden {ref}: " + " ".join(f"{key}={v:+.4f}" if ref == "delta"
                                                   else f"{key}={v:.4f}"
                                                   for key, v in sorted(scores.items())))
    if save_map is not None:
        typer.echo(f"alignment map written to {save_map}")
