"""``embedops collections create|list|show|delete|keygen|default-encryption`` and
``embedops ingest``."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from embedops.cli._common import engine, positive, print_json
from embedops.cli._ray import RAY_ADDRESS_OPTION, RAY_OPTION, RAY_WORKERS_OPTION
from embedops.engine.options import INGEST_FORMATS as FORMATS
from embedops.engine.options import METRICS, TEXT_IDS

NEW_KEY_ENV = "EMBEDOPS_NEW_KEY"
_JSON = typer.Option(False, "--json", help="Machine-readable output.")


def _choice(name: str, value: str | None, allowed: tuple[str, ...]) -> None:
    from embedops.errors import InvalidInput

    if value is not None and value not in allowed:
        raise InvalidInput(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


def register(app: typer.Typer) -> None:
    """Add the ``collections`` group and the ``ingest`` command to ``app``."""
    collections = typer.Typer(help="Create, list, show and delete collections.",
                              no_args_is_help=True)
    app.add_typer(collections, name="collections")
    _register_collections(collections)
    _register_ingest(app)


def _register_collections(group: typer.Typer) -> None:
    @group.command("create")
    def create(
        name: str = typer.Argument(..., help="Collection name (letters, digits, _ . -)."),
        model: str = typer.Option(..., "--model", "-m", help="Model: name, name@N or name@latest."),
        metric: str = typer.Option("cosine", "--metric", help=f"One of {', '.join(METRICS)}."),
        encrypted: bool | None = typer.Option(
            None, "--encrypted/--plain",
            help="Encrypt texts, metadata and vectors at rest (key from $EMBEDOPS_KEY or "
            "$EMBEDOPS_KEY_FILE). Default: the workspace setting.",
        ),
        redact: bool = typer.Option(
            False, "--redact", help="Replace PII (e-mail, phone, card, IP, URL credentials) in "
            "every text written to the collection, at ingest and upsert."),
        as_json: bool = _JSON,
    ) -> None:
        """Create an empty collection embedded by a model version."""
        with engine() as eo:
            info = eo.collections.create(name, model, metric=metric, encrypted=encrypted,
                                         redact=redact)
        if as_json:
            print_json(info.to_dict())
            return
        typer.echo(f"created collection {info.name} ({info.model_version}, dim {info.dim}, "
                   f"{info.metric}{', encrypted' if info.encrypted else ''})")

    @group.command("list")
    def list_(as_json: bool = _JSON) -> None:
        """List collections with their model version and live item count."""
        with engine() as eo:
            rows = eo.collections.list()
        if as_json:
            print_json([c.to_dict() for c in rows])
            return
        from rich.console import Console
        from rich.table import Table

        table = Table("collection", "model", "candidate", "metric", "dim", "items", "encrypted")
        for c in rows:
            table.add_row(c.name, c.model_version, c.candidate_version or "", c.metric,
                          str(c.dim), str(c.item_count), "yes" if c.encrypted else "no")
        Console().print(table)

    @group.command("show")
    def show(
        name: str = typer.Argument(..., help="Collection name."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output (the "
                                     "report is JSON either way)."),
    ) -> None:
        """Print a collection's settings, counts, vectors per version and last ingest runs."""
        with engine() as eo:
            print_json(eo.collections.stats(name))  # JSON with or without --json
        del as_json

    @group.command("delete")
    def delete(
        name: str = typer.Argument(..., help="Collection name."),
        yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
        as_json: bool = _JSON,
    ) -> None:
        """Delete a collection: its items, vectors, lineage and index snapshots."""
        with engine() as eo:
            info = eo.collections.info(name)
            if not yes:
                typer.confirm(f"delete collection {name} ({info.item_count} items)?", abort=True)
            eo.collections.delete(name)
        if as_json:
            print_json({"deleted": name, "items": info.item_count})
            return
        typer.echo(f"deleted collection {name}")

    @group.command("keygen")
    def keygen(as_json: bool = _JSON) -> None:
        """Print a new random key for $EMBEDOPS_KEY; without it encrypted data is lost."""
        from embedops.engine.options import generate_key

        key = generate_key()
        if as_json:
            print_json({"key": key})
            return
        typer.echo(key)

    @group.command("rekey")
    def rekey(name: str = typer.Argument(..., help="Encrypted collection."),
              as_json: bool = _JSON) -> None:
        """Re-encrypt a collection under the key in $EMBEDOPS_NEW_KEY (base64), using the
        current key from $EMBEDOPS_KEY / $EMBEDOPS_KEY_FILE; then make the new key current."""
        import os

        from embedops.engine.options import parse_key
        from embedops.errors import EncryptionKeyError

        raw = os.environ.get(NEW_KEY_ENV, "")
        if not raw:
            raise EncryptionKeyError(
                f"{NEW_KEY_ENV} is not set",
                f"export {NEW_KEY_ENV}=$(embedops collections keygen) and keep that key safe",
            )
        with engine() as eo:
            eo.collections.rekey(name, parse_key(raw.encode(), NEW_KEY_ENV))
        if as_json:
            print_json({"rekeyed": name})
            return
        typer.echo(f"collection {name} is now encrypted with the key in {NEW_KEY_ENV}; "
                   "set EMBEDOPS_KEY to it")

    @group.command("default-encryption")
    def default_encryption(
        state: str = typer.Argument(..., help="'on' or 'off'."),
        as_json: bool = _JSON,
    ) -> None:
        """Encrypt every new collection of this workspace unless created with --plain."""
        _choice("state", state, ("on", "off"))
        with engine() as eo:
            eo.collections.set_default_encryption(state == "on")
        if as_json:
            print_json({"default_encryption": state == "on"})
            return
        typer.echo(f"new collections are {'encrypted' if state == 'on' else 'plain'} by default")


def _register_ingest(app: typer.Typer) -> None:
    @app.command("ingest")
    def ingest(
        collection: str = typer.Argument(..., help="Collection to fill."),
        file: Path = typer.Argument(  # noqa: B008 - typer reads its options from defaults
            ..., help="JSONL, CSV/TSV, Parquet or text file (.gz/.xz ok)."),
        id_field: str = typer.Option("id", "--id-field", help="Field holding the item id."),
        text_field: str = typer.Option("text", "--text-field", help="Field holding the text."),
        fmt: str | None = typer.Option(None, "--format", help=f"One of {', '.join(FORMATS)} "
                                       "(default: from the file name)."),
        batch_size: int = typer.Option(1024, "--batch-size", help="Items embedded and committed "
                                       "per transaction."),
        delete_field: str | None = typer.Option(
            None, "--delete-field", help="Records with this field true delete their id."),
        delete_missing: bool = typer.Option(
            False, "--delete-missing", help="Delete stored items that are not in the file."),
        text_ids: str = typer.Option("line", "--text-ids", help="Ids of plain-text items: "
                                     "'line' (line number) or 'hash' (of the text)."),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
        ray: bool = RAY_OPTION,
        ray_address: str | None = RAY_ADDRESS_OPTION,
        ray_workers: int | None = RAY_WORKERS_OPTION,
    ) -> None:
        """Embed and store a file's items; unchanged items are skipped, so a re-run (or a run
        after a crash) only does what is left."""
        from embedops.engine.executors import batch_executor

        _choice("--format", fmt, FORMATS)
        _choice("--text-ids", text_ids, TEXT_IDS)
        positive("--batch-size", batch_size)
        with engine() as eo, batch_executor(ray, ray_address, ray_workers) as executor:
            report = eo.ingest(
                collection, file, id_field=id_field, text_field=text_field,
                batch_size=batch_size, fmt=fmt, delete_field=delete_field,
                delete_missing=delete_missing, text_ids=text_ids, executor=executor,
            )
        if as_json:
            print_json(report.to_dict())
        else:
            rate = report.read / report.seconds if report.seconds > 0 else 0.0
            typer.echo(
                f"{collection}: read {report.read}, embedded {report.embedded}, unchanged "
                f"{report.unchanged}, deleted {report.deleted}, duplicate ids "
                f"{report.duplicates}, failed lines {len(report.failed_lines)} "
                f"({report.seconds:.1f} s, {rate:,.0f} items/s)"
            )
        for line, message in report.failed_lines[:10]:
            print(f"warning: {file.name} line {line}: {message}", file=sys.stderr)
        if len(report.failed_lines) > 10:
            print(f"warning: ... and {len(report.failed_lines) - 10} more failed lines "
                  f"(see 'embedops collections show {collection}')", file=sys.stderr)
        for note in report.notes:
            print(f"warning: {note}", file=sys.stderr)
        if report.read == 0 and not report.failed_lines:
            print(f"warning: {file} holds no records; nothing was ingested", file=sys.stderr)
