"""Leases: one worker of a deployment runs each schedule, once per interval.

Every worker of a server (``--workers N``, or several servers on one workspace) runs the same
scheduler threads. Before a scheduled job runs, its worker calls ``Leases.claim``: in one
``BEGIN IMMEDIATE`` transaction of ``monitor.db`` it takes or renews the job's lease (a row
with the holder's id and an expiry) and claims the current interval (``floor(now /
interval)``). Only the holder may claim, and an interval is claimed once, so a job runs
exactly once per interval across the deployment; when the holder dies its lease expires and
another worker takes over at the next interval.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass

from embedops.errors import InvalidInput
from embedops.monitor.db import MonitorDB


def holder_id() -> str:
    """A worker id unique across hosts, processes and restarts: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Lease:
    """Who holds the lease of a job, until when, and the interval it last ran in."""

    name: str
    holder: str
    expires_at: float
    last_slot: int
    last_run_at: float | None


class Leases:
    """The leases of one workspace's monitor database."""

    def __init__(self, db: MonitorDB, holder: str | None = None) -> None:
        self.db = db
        self.holder = holder or holder_id()

    def claim(self, name: str, interval_s: float, ttl_s: float | None = None,
              now: float | None = None) -> bool:
        """True when this worker should run job ``name`` now: it holds (or took) the job's
        lease, renewed for ``ttl_s`` (default three intervals), and the current interval had
        no run yet (it is now claimed)."""
        if interval_s <= 0:
            raise InvalidInput(f"a schedule interval must be positive, got {interval_s}")
        now = time.time() if now is None else now
        ttl = 3 * interval_s if ttl_s is None else ttl_s
        slot = int(now // interval_s)
        with self.db.transaction() as conn:
            row = conn.execute("SELECT holder, expires_at, last_slot FROM leases WHERE name = ?",
                               (name,)).fetchone()
            if row is None:
                conn.execute("INSERT INTO leases (name, holder, expires_at, last_slot, "
                             "last_run_at) VALUES (?,?,?,?,?)",
                             (name, self.holder, now + ttl, slot, now))
                return True
            holder, expires_at, last_slot = row
            if holder != self.holder and expires_at > now:
                return False
            due = int(last_slot) < slot
            conn.execute("UPDATE leases SET holder = ?, expires_at = ?, last_slot = ?, "
                         "last_run_at = CASE WHEN ? THEN ? ELSE last_run_at END WHERE name = ?",
                         (self.holder, now + ttl, slot if due else last_slot, due, now, name))
            return due

    def release(self, name: str) -> None:
        """Give up the lease of ``name`` if this worker holds it (a clean shutdown), so another
        worker takes over at once."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE leases SET expires_at = 0 WHERE name = ? AND holder = ?",
                         (name, self.holder))

    def get(self, name: str) -> Lease | None:
        """The lease of ``name``, or None when it never ran."""
        row = self.db.connection().execute(
            "SELECT name, holder, expires_at, last_slot, last_run_at FROM leases "
            "WHERE name = ?", (name,)).fetchone()
        return None if row is None else Lease(row[0], row[1], row[2], int(row[3]), row[4])
