"""One migration per collection and one candidate training per workspace: a second run is
refused at once with a one-line error, and the lock is free again after the first ends."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedops.config import Workspace
from embedops.engine import Embedops
from embedops.errors import Conflict
from embedops.fsio import file_lock
from embedops.lifecycle.migrate import Migrations
from embedops.lifecycle.proposals import _training_lock
from embedops.lifecycle.rollout import RolloutConflict


def test_file_lock_without_waiting_refuses_a_held_lock(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    with file_lock(path, wait=False):
        with pytest.raises(BlockingIOError), file_lock(path, wait=False):
            pass
    with file_lock(path, wait=False):  # released
        pass


def test_a_second_migration_of_a_collection_is_refused(tmp_path: Path) -> None:
    with Embedops(Workspace(tmp_path / "ws").ensure()) as api:
        runs = Migrations(api)
        with runs._run_lock("docs"):
            with pytest.raises(RolloutConflict, match="already running"), runs._run_lock("docs"):
                pass
            with runs._run_lock("other"):  # another collection is not blocked
                pass
        with runs._run_lock("docs"):
            pass


def test_a_second_candidate_training_is_refused(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    with _training_lock(ws):
        with pytest.raises(Conflict, match="being trained"), _training_lock(ws):
            pass
    with _training_lock(ws):
        pass
