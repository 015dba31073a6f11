"""Catalog schema and its migrations.

Each migration is a list of SQL statements; ``migrate`` applies the missing ones, in order, in
one transaction on open, and records the version in ``schema_version``. A catalog written by a
newer embedops (higher version than known here) is refused rather than misread.
"""

from __future__ import annotations

import sqlite3

from embedops.errors import IntegrityError

MIGRATIONS: list[list[str]] = [
    # 1: collections, items, vectors per model version, lineage, ingest runs, settings
    [
        """CREATE TABLE collections (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            model_version TEXT NOT NULL,
            candidate_version TEXT,
            metric TEXT NOT NULL,
            dim INTEGER NOT NULL,
            encrypted INTEGER NOT NULL DEFAULT 0,
            key_id TEXT,
            created_at REAL NOT NULL
        )""",
        """CREATE TABLE collection_versions (
            collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
            model_version TEXT NOT NULL,
            dim INTEGER NOT NULL,
            first_at REAL NOT NULL,
            PRIMARY KEY (collection_id, model_version)
        )""",
        """CREATE TABLE items (
            pk INTEGER PRIMARY KEY,
            collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
            item_id TEXT NOT NULL,
            text BLOB NOT NULL,
            metadata BLOB NOT NULL,
            content_hash TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            deleted_at REAL,
            UNIQUE (collection_id, item_id)
        )""",
        "CREATE INDEX items_updated ON items (collection_id, updated_at)",
        """CREATE TABLE vectors (
            item_pk INTEGER NOT NULL REFERENCES items(pk) ON DELETE CASCADE,
            model_version TEXT NOT NULL,
            vector BLOB NOT NULL,
            computed_at REAL NOT NULL,
            PRIMARY KEY (item_pk, model_version)
        )""",
        """CREATE TABLE ingest_runs (
            run_id TEXT PRIMARY KEY,
            collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
            source TEXT,
            started_at REAL NOT NULL,
            finished_at REAL,
            report TEXT
        )""",
        """CREATE TABLE lineage (
            id INTEGER PRIMARY KEY,
            item_pk INTEGER NOT NULL REFERENCES items(pk) ON DELETE CASCADE,
            run_id TEXT,
            source TEXT,
            line INTEGER,
            content_hash TEXT NOT NULL,
            recorded_at REAL NOT NULL
        )""",
        "CREATE INDEX lineage_item ON lineage (item_pk)",
        "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ],
    # 2: live item count kept per collection (counting rows on every lookup is O(items))
    [
        "ALTER TABLE collections ADD COLUMN live_count INTEGER NOT NULL DEFAULT 0",
        """UPDATE collections SET live_count = (SELECT COUNT(*) FROM items
            WHERE items.collection_id = collections.id AND items.deleted_at IS NULL)""",
    ],
    # 3: the per-collection PII redaction policy (applied to every text written)
    [
        "ALTER TABLE collections ADD COLUMN redact INTEGER NOT NULL DEFAULT 0",
    ],
    # 4: a collection's items in insertion order. Paging through them (``WHERE collection_id =
    # ? AND pk > ? ORDER BY pk LIMIT n``) otherwise took items_updated and sorted the whole
    # collection for every page: quadratic, 1M items did not finish in 20 minutes.
    [
        "CREATE INDEX items_order ON items (collection_id, pk)",
    ],
]

LATEST = len(MIGRATIONS)


def current_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in ``conn`` (0 for an empty database)."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to ``LATEST`` in one transaction; return the version now in force."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = current_version(conn)
        if version > LATEST:
            raise IntegrityError(
                f"the catalog has schema version {version}; this embedops knows up to {LATEST}",
                "upgrade embedops to read this workspace",
            )
        for number in range(version + 1, LATEST + 1):
            for statement in MIGRATIONS[number - 1]:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return LATEST
