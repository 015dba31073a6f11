"""Collection rows of the catalog: reading them by name, on the caller's connection."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from embedops.errors import CollectionNotFound
from embedops.store.models import CollectionInfo

COLS = (
    "id, name, model_version, candidate_version, metric, dim, encrypted, key_id, created_at, "
    "live_count, redact"
)


@dataclass(frozen=True)
class Coll:
    """A collection row plus its primary key (internal)."""

    pk: int
    info: CollectionInfo
    key_id: str | None


def row_to_coll(row: Sequence[Any]) -> Coll:
    """A ``SELECT {COLS}`` row as a Coll."""
    pk, name, model, candidate, metric, dim, enc, key_id, created, count, redact = row
    info = CollectionInfo(name, model, candidate, metric, int(dim), bool(enc), created, int(count),
                          bool(redact))
    return Coll(int(pk), info, key_id)


def find_coll(conn: sqlite3.Connection, name: str) -> Coll:
    """The collection named ``name``, or CollectionNotFound listing the known names."""
    row = conn.execute(f"SELECT {COLS} FROM collections WHERE name = ?", (name,)).fetchone()
    if row is None:
        known = [r[0] for r in conn.execute("SELECT name FROM collections ORDER BY name")]
        raise CollectionNotFound(
            f"no collection named {name!r} (known collections: {', '.join(known) or 'none'})",
            "create one with 'embedops collections create NAME --model MODEL'",
        )
    return row_to_coll(row)


def all_colls(conn: sqlite3.Connection) -> list[Coll]:
    """Every collection, by name."""
    rows = conn.execute(f"SELECT {COLS} FROM collections ORDER BY name")
    return [row_to_coll(row) for row in rows]
