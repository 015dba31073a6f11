"""``embedops`` entry point: global options, error reporting, and the command groups.

Each command group lives in its own module with a ``register(app)`` function; this module only
wires them together and turns EmbedopsError into a clear message and a non-zero exit code.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from embedops import __version__
from embedops.config import HOME_ENV
from embedops.errors import EmbedopsError
from embedops.logs import LEVELS, quiet_libraries
from embedops.logs import configure as configure_logging
from embedops.progress import is_quiet, set_quiet

app = typer.Typer(
    name="embedops",
    help="Word and text embeddings in production: train, store, index, serve, evaluate, roll out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"embedops {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    home: Path | None = typer.Option(
        None, "--home", help=f"Workspace folder (default ${HOME_ENV} or ./embedops-data)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    verbose: int = typer.Option(
        0, "--verbose", "-v", count=True,
        help="More log output: -v embedops' info lines and library warnings, -vv everything.",
    ),
    log_level: str | None = typer.Option(
        None, "--log-level", help=f"Level of embedops' own log lines: {', '.join(LEVELS)} "
        "(default warning; libraries stay at error unless -v).",
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Word and text embeddings in production: train, store, index, serve, evaluate, roll
    out."""
    if home is not None:
        os.environ[HOME_ENV] = str(home)
    set_quiet(quiet or is_quiet())
    configure_logging(verbose, log_level)


def _register_all() -> None:
    from embedops.cli import (
        distill_cmd,
        encode_cmd,
        index_cmd,
        loop_cmd,
        models_cmd,
        monitor_cmd,
        privacy_cmd,
        quickstart,
        rollout_cmd,
        serve_cmd,
        store_cmd,
        train_cmd,
        usecases_cmd,
        vectors_cmd,
    )

    for module in (
        quickstart,
        train_cmd,
        vectors_cmd,
        models_cmd,
        encode_cmd,
        distill_cmd,
        store_cmd,
        index_cmd,
        serve_cmd,
        monitor_cmd,
        rollout_cmd,
        loop_cmd,
        usecases_cmd,
        privacy_cmd,
    ):
        module.register(app)


_register_all()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; EmbedopsError becomes ``error: …`` on stderr and exit code 1."""
    quiet_libraries()
    try:
        app(args=argv, standalone_mode=False)
    except EmbedopsError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 1
    except OSError as exc:  # a path the user gave: missing, a folder, unwritable, disk full
        print(f"error: {_os_message(exc)}", file=sys.stderr)
        print("hint: check the path and its permissions", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        return 130
    except typer.TyperException as exc:  # usage errors: unknown option, missing argument, ...
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            print(f"error: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 2))
    return 0


def _os_message(exc: OSError) -> str:
    """``cannot write 'out.txt': Is a directory`` from an OSError, without a traceback."""
    what = exc.strerror or str(exc)
    # A rename names its target second: that is the path the user gave, not the temp file.
    name = exc.filename2 if exc.filename2 is not None else exc.filename
    return what if name is None else f"{name}: {what}"


if __name__ == "__main__":
    sys.exit(main())
