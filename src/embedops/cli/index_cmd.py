"""``embedops index build|refresh|merge|verify|rollback|status`` and ``embedops search``."""

from __future__ import annotations

import json
from typing import Any

import typer

from embedops.cli._common import engine, print_json
from embedops.engine.options import DEFAULT_HYBRID_WEIGHT, parse_cli_filters
from embedops.errors import IntegrityError, InvalidInput

_MODES = "dense, lexical, hybrid or two_stage (two-stage also accepted)."
_KINDS = "Index kind: flat, hnsw, ivf, ivfpq or sq8."


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``["M=32", "efSearch=64"]`` → ``{"M": 32, "efSearch": 64}`` (values read as JSON when
    they parse, else kept as strings)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"cannot read --param '{pair}'", "write --param key=value")
        try:
            out[key.strip()] = json.loads(raw)
        except ValueError:
            out[key.strip()] = raw
    return out


def register(app: typer.Typer) -> None:
    """Add the ``index`` group and the ``search`` command to ``app``."""
    index = typer.Typer(help="Build, verify, roll back and inspect ANN indexes.",
                        no_args_is_help=True)
    app.add_typer(index, name="index")
    _register_build(index)
    _register_maintenance(index)
    _register_search(app)


_VERSION_HELP = "Default: the collection's active version."


def _register_build(index: typer.Typer) -> None:

    @index.command("build")
    def build(
        collection: str = typer.Argument(..., help="Collection name."),
        kind: str = typer.Option("flat", "--kind", help=_KINDS),
        backend: str | None = typer.Option(None, "--backend", "-b", hidden=True,
                                           help="Old spelling of --kind."),
        param: list[str] | None = typer.Option(  # noqa: B008 - typer's list option
            None, "--param", "-p", help="Index parameter key=value (e.g. M=32); repeatable."
        ),
        model_version: str | None = typer.Option(None, "--model-version", help=_VERSION_HELP),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Build an index from the catalog and publish it as a checksummed snapshot."""
        if backend is not None and kind != "flat" and backend != kind:
            raise InvalidInput(f"--kind {kind} and --backend {backend} disagree",
                               "give --kind only (--backend is its old spelling)")
        chosen = backend or kind
        with engine() as api:
            summary = api.build_index(collection, chosen, parse_params(param or []),
                                      model_version)
        summary = {**summary, "kind": summary.get("kind") or summary.get("backend", chosen)}
        if as_json:
            print_json(summary)
            return
        typer.echo(f"built {summary['kind']} index of {collection} "
                   f"({summary['model_version']}): {summary['count']} items in "
                   f"{summary['build_seconds']} s, snapshot {summary['name']}")


_COLLECTION = typer.Argument(..., help="Collection name.")
_JSON = typer.Option(False, "--json", help="Machine-readable output.")


def _register_maintenance(index: typer.Typer) -> None:
    version_opt = typer.Option(None, "--model-version", help=_VERSION_HELP)

    @index.command("verify")
    def verify(collection: str = _COLLECTION, model_version: str | None = version_opt,
               as_json: bool = _JSON) -> None:
        """Recompute the checksums of every snapshot; exit 1 if one is damaged."""
        with engine() as api:
            checks = api.verify_index(collection, model_version)
        if as_json:
            print_json([{"name": c.name, "ok": c.ok, "problems": list(c.problems)}
                        for c in checks])
        else:
            for check in checks:
                typer.echo(f"{check.name}: {'ok' if check.ok else '; '.join(check.problems)}")
            if not checks:
                typer.echo(f"{collection} has no index snapshot yet")
        bad = [c.name for c in checks if not c.ok]
        if bad:
            raise IntegrityError(f"{len(bad)} damaged snapshot(s): {', '.join(bad)}",
                                 f"rebuild with 'embedops index build {collection}'")

    @index.command("rollback")
    def rollback(collection: str = _COLLECTION, model_version: str | None = version_opt,
                 as_json: bool = _JSON) -> None:
        """Serve the previous good snapshot again."""
        with engine() as api:
            info = api.rollback_index(collection, model_version)
        if as_json:
            print_json(info)
            return
        kind = info.get("kind") or info.get("backend")
        typer.echo(f"{collection} now serves snapshot {info['name']} ({kind}, "
                   f"{info.get('item_count')} items, built {info.get('built_at')})")

    _register_status(index)
    _register_segments(index)


def _print_segments(verb: str, collection: str, summary: dict[str, Any]) -> None:
    if not summary.get("changed"):
        typer.echo(f"{collection}: nothing to {verb} (snapshot {summary.get('name')})")
        return
    done = "merged" if verb == "merge" else "refreshed"
    typer.echo(f"{done} {collection}: snapshot {summary['name']}, {summary['segments']} "
               f"segment(s), {summary['count']} items ({summary['added']} new, "
               f"{summary['merged']} segment(s) merged) in {summary['seconds']} s")


def _register_segments(index: typer.Typer) -> None:
    version_opt = typer.Option(None, "--model-version", help=_VERSION_HELP)
    rate_opt = typer.Option(None, "--merge-rate", min=0,
                            help="Vectors a second the segment builds may add, leaving the "
                            "cores to searches (0: unlimited; default $EMBEDOPS_MERGE_RATE).")

    @index.command("refresh")
    def refresh(
        collection: str = _COLLECTION, model_version: str | None = version_opt,
        max_segments: int = typer.Option(10, "--max-segments", min=1,
                                         help="Merge the small segments past this many."),
        merge_rate: float | None = rate_opt,
        as_json: bool = _JSON,
    ) -> None:
        """Index the items written since the snapshot as a new segment (from those items
        only) and publish it."""
        with engine() as api:
            summary = api.refresh_index(collection, model_version, max_segments, merge_rate)
        if as_json:
            print_json(summary)
            return
        _print_segments("refresh", collection, summary)

    @index.command("merge")
    def merge(collection: str = _COLLECTION, model_version: str | None = version_opt,
              merge_rate: float | None = rate_opt, as_json: bool = _JSON) -> None:
        """Rebuild every segment into one, dropping deleted and rewritten entries."""
        with engine() as api:
            summary = api.merge_index(collection, model_version, merge_rate)
        if as_json:
            print_json(summary)
            return
        _print_segments("merge", collection, summary)


def _register_status(index: typer.Typer) -> None:
    @index.command("status")
    def status(
        collection: str = _COLLECTION,
        model_version: str | None = typer.Option(None, "--model-version", help=_VERSION_HELP),
        memory: bool = typer.Option(False, "--memory", help="Load the index (verifying it, as "
                                    "a server does) and report the RAM it holds."),
        as_json: bool = _JSON,
    ) -> None:
        """Current snapshot, item count and freshness (items not yet in the snapshot)."""
        with engine() as api:
            report = api.index_status(collection, model_version, load=memory)
        if as_json:
            print_json(report)
            return
        snap, fresh = report["snapshot"], report["freshness"]
        typer.echo(f"collection {collection} ({report['model_version']}): {report['items']} items")
        if snap is None:
            typer.echo(f"no index yet: run 'embedops index build {collection}'")
            return
        kind = snap.get("kind") or snap.get("backend")
        typer.echo(f"snapshot {snap['name']}: {kind}, {snap.get('item_count')} "
                   f"items, built {snap.get('built_at')}")
        if snap.get("segments"):
            dead = sum(int(s.get("tombstones", 0)) for s in snap["segments"])
            typer.echo(f"segments: {len(snap['segments'])} ({dead} tombstones)")
        typer.echo(f"not in snapshot: {fresh['stale_items']} items "
                   f"(oldest {fresh['oldest_stale_age_s']} s)")
        served = report.get("served")
        if served and served.get("memory_bytes") is not None:
            per = served["memory_bytes"] / max(int(served.get("count") or 0), 1)
            typer.echo(f"in memory: {served['memory_bytes'] / 2**20:.1f} MiB "
                       f"({per:.1f} bytes per item; vectors memory-mapped for rescoring not "
                       "counted)")


def _register_search(app: typer.Typer) -> None:
    @app.command("search")
    def search(
        collection: str = typer.Argument(..., help="Collection name."),
        query: str = typer.Argument(..., help="Text to search for."),
        k: int = typer.Option(10, "-k", "--k", help="Number of results (1-1000)."),
        mode: str = typer.Option("dense", "--mode", "-m", help=_MODES),
        filter_: list[str] | None = typer.Option(  # noqa: B008 - typer's list option
            None, "--filter", "-f", help='Metadata filter: field=value, field>=x, field=["a","b"].'
        ),
        hybrid_weight: float = typer.Option(
            DEFAULT_HYBRID_WEIGHT, "--hybrid-weight", help="Dense share, 0-1."
        ),
        model_version: str | None = typer.Option(None, "--model-version", help=_VERSION_HELP),
        param: list[str] | None = typer.Option(  # noqa: B008 - typer's list option
            None, "--param", "-p",
            help="Index knob for this search, NAME=INT: ef_search (hnsw), nprobe (ivf, ivfpq), "
            "rescore_factor (ivfpq, sq8). Repeatable.",
        ),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Search a collection (dense, lexical BM25, hybrid RRF or two-stage)."""
        filters = parse_cli_filters(filter_) if filter_ else None
        search_params = parse_params(param) if param else None
        with engine() as api:
            response = api.search(collection, query, k, mode, filters, model_version,
                                  hybrid_weight, search_params=search_params)
        if as_json:
            print_json(response.to_dict())
            return
        _print_hits(response)


def _print_hits(response: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("#", "id", "score", "text", "metadata",
                  title=f"{response.mode} · {response.model_version or 'bm25'} · "
                        f"{response.took_ms:.1f} ms")
    for rank, hit in enumerate(response.hits, start=1):
        text = hit.text if len(hit.text) <= 80 else hit.text[:77] + "..."
        table.add_row(str(rank), hit.id, f"{hit.score:.4f}", text,
                      json.dumps(hit.metadata, ensure_ascii=False) if hit.metadata else "")
    Console().print(table)
    if not response.hits:
        typer.echo("no results")
