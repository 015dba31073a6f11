"""Progress bars for long work (rich), silenced by ``--quiet`` or when not on a terminal.

This is the one progress display of embedops: the command line turns off the tqdm bars of the
libraries it drives (``embedops.logs``), so bars never interleave. ``EMBEDOPS_PROGRESS=1``
keeps the bars when stderr is not a terminal (a CI log that wants them)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

_QUIET = {"value": os.environ.get("EMBEDOPS_QUIET", "") not in ("", "0")}
FORCE_ENV = "EMBEDOPS_PROGRESS"


def set_quiet(quiet: bool) -> None:
    """Turn progress output off (or on) for this process."""
    _QUIET["value"] = quiet


def is_quiet() -> bool:
    """True when progress output is off (``--quiet`` or ``$EMBEDOPS_QUIET``)."""
    return _QUIET["value"]


def _shown(quiet: bool | None) -> bool:
    """Whether a bar is drawn: not quiet, and stderr a terminal (or ``$EMBEDOPS_PROGRESS``)."""
    if quiet if quiet is not None else is_quiet():
        return False
    return sys.stderr.isatty() or os.environ.get(FORCE_ENV, "") not in ("", "0")


class _NullTask:
    def advance(self, n: float = 1) -> None:
        pass

    def update(self, **_: Any) -> None:
        pass


class _Task:
    def __init__(self, progress: Any, task_id: Any) -> None:
        self._progress, self._id = progress, task_id

    def advance(self, n: float = 1) -> None:
        self._progress.advance(self._id, n)

    def update(self, **fields: Any) -> None:
        self._progress.update(self._id, **fields)


@contextlib.contextmanager
def progress_bar(
    description: str, total: float | None, unit: str = "items", quiet: bool | None = None
) -> Iterator[_Task | _NullTask]:
    """A progress bar with rate (``unit``/s) and ETA on stderr; a no-op when quiet or when
    stderr is not a terminal.

    Use ``task.advance(n)`` as work completes.
    """
    if not _shown(quiet):
        yield _NullTask()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns: list[Any] = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(unit),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    console = Console(stderr=True, force_terminal=None if sys.stderr.isatty() else False)
    with Progress(*columns, console=console, transient=False) as progress:
        yield _Task(progress, progress.add_task(description, total=total))


def _rate_column_base() -> Any:
    from rich.progress import ProgressColumn

    return ProgressColumn


class _RateColumn(_rate_column_base()):  # type: ignore[misc]
    """``12,345 words/s``."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Any) -> Any:
        from rich.text import Text

        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} {self.unit}/s" if speed else f"- {self.unit}/s")
