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

_cli = typer.Typer(
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


@_cli.callback()
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


# The command modules, in the order their commands are listed in ``--help``.
_MODULES = ("quickstart", "train_cmd", "vectors_cmd", "models_cmd", "encode_cmd", "distill_cmd",
            "store_cmd", "index_cmd", "serve_cmd", "monitor_cmd", "rollout_cmd", "loop_cmd",
            "usecases_cmd", "privacy_cmd")
# Commands whose module alone is imported when one is named: ``embedops serve`` starts without
# importing the other commands' modules (cold start). Every other call registers them all.
_ALONE = {"serve": "serve_cmd"}
# Global options that take a value (the token after them is not the command).
_VALUED = ("--home", "--log-level")
_registered: list[str] = []


def _register(modules: tuple[str, ...] = _MODULES) -> None:
    import importlib

    for name in modules:
        if name not in _registered:
            importlib.import_module(f"embedops.cli.{name}").register(_cli)
            _registered.append(name)


def _command_of(argv: list[str]) -> str | None:
    """The command ``argv`` names (the first token that is neither a global option nor the
    value of one), or None."""
    args = iter(argv)
    for token in args:
        if token in _VALUED:
            next(args, None)
        elif not token.startswith("-"):
            return token
    return None


def __getattr__(name: str) -> typer.Typer:
    """``app`` with every command registered (for whatever walks the CLI, e.g. its tests)."""
    if name == "app":
        _register()
        return _cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; EmbedopsError becomes ``error: …`` on stderr and exit code 1."""
    quiet_libraries()
    args = sys.argv[1:] if argv is None else argv
    command = _command_of(args)
    _register((_ALONE[command],) if command in _ALONE else _MODULES)
    try:
        _cli(args=argv, standalone_mode=False)
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
