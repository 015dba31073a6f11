"""Following the catalog's changes: which items were written or deleted since we last looked.

Timestamps come from the writers' clocks and a transaction may commit a little after the time it
recorded (writers stamp their rows as the transaction's last step, so "a little" is the commit
itself, not the whole write), so each poll looks back ``MARGIN_S`` seconds before the watermark
and drops the
``(id, updated_at)`` pairs it has already reported. Applying a change twice must be harmless
for callers anyway; this keeps it rare.

The look-back is bounded by the last poll too: a poll made at wall time P has seen every change
stamped before ``P - MARGIN_S`` (those transactions had committed), so the next poll starts no
earlier than that. Without this bound, a bulk write made just before an index build would be
re-read (and discarded) on every search for good.

Polls are skipped while the catalog is unchanged: ``CatalogWatch`` reads SQLite's
``PRAGMA data_version`` on a connection of its own that never writes, so the number moves on
every commit by any connection, in this process or another. A search after a write (through the
facade or not) therefore still sees it, and a search with no write in between costs no query.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

MARGIN_S = 2.0


class Change(NamedTuple):
    """One item written (``deleted`` False) or deleted after the watermark."""

    id: str
    updated_at: float
    deleted: bool


class ChangeTracker:
    """Reports each catalog change of one collection once, oldest first."""

    def __init__(self, since: float, known: Iterable[tuple[str, float]] = ()) -> None:
        self.watermark = float(since)
        self._settled = float("-inf")
        self._generation: int | None = None
        self._seen: dict[str, float] = {
            i: t for i, t in known if t >= self.watermark - MARGIN_S
        }

    def poll(self, catalog: Any, collection: str, generation: int | None = None) -> list[Change]:
        """Changes not reported before (``catalog.changes_since`` with a look-back margin).

        ``generation`` (``CatalogWatch.generation()``, read before this call) skips the query
        when the catalog has not changed since the last poll made with the same number."""
        if generation is not None and generation == self._generation:
            return []
        polled_at = time.time()
        start = max(self.watermark - MARGIN_S, self._settled)
        rows = catalog.changes_since(collection, start)
        self._settled = max(self._settled, polled_at - MARGIN_S)
        fresh = [Change(str(i), float(t), bool(d)) for i, t, d in rows if self._seen.get(i) != t]
        for change in fresh:
            self._seen[change.id] = change.updated_at
        if rows:
            self.watermark = max(self.watermark, max(float(t) for _, t, _ in rows))
        floor = self.watermark - 2 * MARGIN_S
        self._seen = {i: t for i, t in self._seen.items() if t >= floor}
        self._generation = generation
        return fresh


class CatalogWatch:
    """The catalog's change counter (``PRAGMA data_version`` on a private read connection)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def generation(self) -> int | None:
        """A number that differs after any commit to the catalog since the previous call's
        answer; None when it cannot be read (callers then poll as if it changed)."""
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = sqlite3.connect(self.path, isolation_level=None,
                                                 check_same_thread=False)
                return int(self._conn.execute("PRAGMA data_version").fetchone()[0])
            except sqlite3.Error:
                self._close()
                return None

    def close(self) -> None:
        """Close the private connection (reopened on the next ``generation`` call)."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def split(changes: Iterable[Change]) -> tuple[list[str], list[str]]:
    """(written ids, deleted ids), each id in its latest state only."""
    latest: dict[str, bool] = {}
    for change in changes:
        latest[change.id] = change.deleted
    written = [i for i, d in latest.items() if not d]
    deleted = [i for i, d in latest.items() if d]
    return written, deleted
