"""The catalog's SQLite connections: one per thread, WAL mode, ``BEGIN IMMEDIATE`` writes.

Each thread gets its own connection (the web server calls from a thread pool); every write that
spans rows is one immediate transaction, so a killed process leaves the catalog as it was
before or after the write, never between.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from embedops.errors import Unavailable


class CatalogDB:
    """Per-thread connections to the catalog file ``path``; a write waits up to ``timeout_ms``
    for another writer, then raises Unavailable."""

    def __init__(self, path: Path, timeout_ms: int) -> None:
        self.path = path
        self._timeout_ms = timeout_ms
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._guard = threading.Lock()

    def conn(self) -> sqlite3.Connection:
        """This thread's connection (opened and configured on first use)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, isolation_level=None, timeout=self._timeout_ms / 1000,
                check_same_thread=False,
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA busy_timeout={self._timeout_ms}")
            self._local.conn = conn
            with self._guard:
                self._conns.append(conn)
        return conn

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed on exit, rolled back on an error."""
        conn = self.conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise Unavailable(
                f"the catalog {self.path} is busy or unwritable ({exc})",
                "another process holds a long write; retry in a moment",
            ) from exc
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        """Close every connection opened here (checkpointing the WAL)."""
        with self._guard:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the catalog file and truncate it."""
        self.conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
