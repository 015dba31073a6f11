"""``embedops models list|show|delete``."""

from __future__ import annotations

import typer

from embedops.cli._common import engine, print_json


def register(app: typer.Typer) -> None:
    """Add the ``models`` group to ``app``."""
    models = typer.Typer(help="List, show and delete model versions.", no_args_is_help=True)
    app.add_typer(models, name="models")

    @models.command("list")
    def list_(
        name: str | None = typer.Argument(None, help="Only versions of this model."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """List model versions, oldest first."""
        with engine() as eo:
            rows = eo.models.list(name)
        if as_json:
            print_json([{**{k: mv.manifest.get(k) for k in _SUMMARY}, "ref": mv.ref}
                        for mv in rows])
            return
        from rich.console import Console
        from rich.table import Table

        table = Table("model", "kind", "dim", "vocab", "parent", "created")
        for mv in rows:
            m = mv.manifest
            table.add_row(
                mv.ref, mv.kind, str(mv.dim), str(m.get("vocab_size", "")),
                str(m.get("parent") or ""), str(m.get("created_at", "")),
            )
        Console().print(table)

    @models.command("show")
    def show(
        ref: str = typer.Argument(..., help="name, name@N or name@latest"),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output (the "
                                     "manifest is JSON either way)."),
    ) -> None:
        """Print a version's manifest (JSON) after verifying its checksums."""
        with engine() as eo:
            print_json(eo.models.show(ref).manifest)  # JSON with or without --json
        del as_json

    @models.command("delete")
    def delete(
        ref: str = typer.Argument(..., help="name@N (a version must be named)"),
        yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Delete one model version."""
        with engine() as eo:
            eo.models.resolve(ref)
            if not yes:
                typer.confirm(f"delete {ref}?", abort=True)
            deleted = eo.models.delete(ref).ref
        if as_json:
            print_json({"deleted": deleted})
            return
        typer.echo(f"deleted {deleted}")


_SUMMARY = ("name", "version", "kind", "dim", "vocab_size", "parent", "created_at", "eval")
