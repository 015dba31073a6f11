"""Small helpers shared by CLI modules."""

from __future__ import annotations

import json
from typing import Any

import typer

from embedops.config import Workspace
from embedops.errors import InvalidInput
from embedops.models.registry import Registry


def workspace() -> Workspace:
    """The workspace selected by ``--home`` / ``$EMBEDOPS_HOME``."""
    return Workspace.from_env().ensure()


def registry() -> Registry:
    return Registry(workspace())


def positive(name: str, value: int) -> int:
    """Refuse ``value <= 0`` for count-like options such as ``-k``."""
    if value <= 0:
        raise InvalidInput(f"{name} must be a positive integer, got {value}")
    return value


def print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))
