"""``embedops audit-privacy MODEL``: canary exposure, a PII scan of a static model's words and a
membership-inference AUC (``--members`` vs ``--held-out`` sentences)."""

from __future__ import annotations

from pathlib import Path

import typer

from embedops.cli._common import engine, print_json
from embedops.errors import InvalidInput


def register(app: typer.Typer) -> None:
    """Add ``audit-privacy`` to ``app``."""
    app.command("audit-privacy")(audit_privacy)


def audit_privacy(
    model: str = typer.Argument(..., help="A static model reference (name or name@N)."),
    canary: list[str] | None = typer.Option(  # noqa: B008 - typer's idiom
        None, "--canary", help="A planted canary as 'context words=secret' (repeatable)."),
    candidates: int = typer.Option(
        1000, min=1, help="Vocabulary words of the secret's frequency to rank it against."),
    threshold: float = typer.Option(3.0, help="Exposure (bits) from which a canary is flagged."),
    members: Path | None = typer.Option(
        None, "--members", exists=True, dir_okay=False,
        help="Sentences the model was trained on, one a line (membership inference)."),
    held_out: Path | None = typer.Option(
        None, "--held-out", exists=True, dir_okay=False,
        help="Sentences from the same source it was not trained on, one a line."),
    max_auc: float = typer.Option(
        0.6, "--max-auc", help="Membership AUC above which the gate fails (0.5 is chance)."),
    html_out: Path | None = typer.Option(None, "--html", help="Also write an HTML report here."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable."),
) -> None:
    """Audit a model; exits 1 when a canary is flagged or PII is found (a publishing gate)."""
    with engine() as api:
        report = api.models.audit_privacy(
            model, canary or [], candidates=candidates, threshold_bits=threshold,
            members=_lines(members), held_out=_lines(held_out), max_membership_auc=max_auc)
    if html_out is not None:
        html_out.write_text(report.to_html(), encoding="utf-8")
    if as_json:
        print_json(report.to_dict())
    else:
        typer.echo(report.to_text())
    report.check()


def _lines(path: Path | None) -> list[str]:
    """The non-empty lines of a UTF-8 text file (none without a file)."""
    if path is None:
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path.name} is not UTF-8 text", "give a UTF-8 file, one sentence "
                           "a line") from exc
    return [line for line in text.splitlines() if line.strip()]
