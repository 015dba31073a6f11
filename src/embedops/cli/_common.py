"""Small helpers shared by CLI modules."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer

from embedops.config import Workspace
from embedops.errors import InvalidInput

if TYPE_CHECKING:
    from embedops.engine import Embedops


def workspace() -> Workspace:
    """The workspace selected by ``--home`` / ``$EMBEDOPS_HOME``."""
    return Workspace.from_env().ensure()


@contextmanager
def engine() -> Iterator[Embedops]:
    """The engine of the selected workspace, closed when the command is done."""
    from embedops.engine import Embedops

    eo = Embedops(workspace())
    try:
        yield eo
    finally:
        eo.close()


def positive(name: str, value: int) -> int:
    """Refuse ``value <= 0`` for count-like options such as ``-k``."""
    if value <= 0:
        raise InvalidInput(f"{name} must be a positive integer, got {value}")
    return value


def print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))
