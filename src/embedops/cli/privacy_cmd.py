"""``embedops audit-privacy MODEL``: canary exposure and a PII scan of a static model's words."""

from __future__ import annotations

from pathlib import Path

import typer

from embedops.cli._common import engine, print_json


def register(app: typer.Typer) -> None:
    """Add ``audit-privacy`` to ``app``."""
    app.command("audit-privacy")(audit_privacy)


def audit_privacy(
    model: str = typer.Argument(..., help="A static model reference (name or name@N)."),
    canary: list[str] | None = typer.Option(  # noqa: B008 - typer's idiom
        None, "--canary", help="A planted canary as 'context words=secret' (repeatable)."),
    candidates: int = typer.Option(1000, min=1, help="Random vocabulary words to rank against."),
    threshold: float = typer.Option(3.0, help="Exposure (bits) from which a canary is flagged."),
    html_out: Path | None = typer.Option(None, "--html", help="Also write an HTML report here."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable."),
) -> None:
    """Audit a model; exits 1 when a canary is flagged or PII is found (a publishing gate)."""
    with engine() as api:
        report = api.models.audit_privacy(model, canary or [], candidates=candidates,
                                          threshold_bits=threshold)
    if html_out is not None:
        html_out.write_text(report.to_html(), encoding="utf-8")
    if as_json:
        print_json(report.to_dict())
    else:
        typer.echo(report.to_text())
    report.check()
