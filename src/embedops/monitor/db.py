"""The monitoring database: golden query sets, their evaluation runs, and drift reports.

It lives next to the catalog as ``monitor.db`` in the workspace (SQLite, WAL), with its own
migrations, so monitoring never competes with ingest for the catalog's write lock and a
catalog can be copied without its evaluation history. Every write is one transaction.

The queries of a golden set bound to an encrypted collection are stored encrypted with that
collection's key (``Embedops.seal``, AES-GCM bound to the set's name), like the collection's
own texts; relevant ids stay plain, as item ids do in the catalog. Runs and drift reports hold
scores and statistics only (no texts, no vectors).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embedops.config import Workspace
from embedops.errors import AlreadyExists, IntegrityError, InvalidInput, NotFound

if TYPE_CHECKING:
    from embedops.engine import Embedops

MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE golden_sets (
            id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, collection TEXT,
            description TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL)""",
        """CREATE TABLE golden_queries (
            id INTEGER PRIMARY KEY,
            set_id INTEGER NOT NULL REFERENCES golden_sets(id) ON DELETE CASCADE,
            query TEXT NOT NULL, relevant TEXT NOT NULL, added_at REAL NOT NULL)""",
        "CREATE INDEX golden_queries_set ON golden_queries (set_id)",
        """CREATE TABLE golden_runs (
            id INTEGER PRIMARY KEY,
            set_id INTEGER NOT NULL REFERENCES golden_sets(id) ON DELETE CASCADE,
            collection TEXT NOT NULL, model_version TEXT, snapshot TEXT,
            params TEXT NOT NULL, scores TEXT NOT NULL, n_queries INTEGER NOT NULL,
            created_at REAL NOT NULL)""",
        "CREATE INDEX golden_runs_set ON golden_runs (set_id, created_at)",
        """CREATE TABLE drift_reports (
            id INTEGER PRIMARY KEY, collection TEXT NOT NULL, model_version TEXT,
            report TEXT NOT NULL, created_at REAL NOT NULL)""",
        "CREATE INDEX drift_reports_coll ON drift_reports (collection, created_at)",
    ],
    [
        # Leases elect the one worker of a deployment that runs a schedule (monitor.leases);
        # ``last_slot`` is the interval a schedule last ran in, so each interval runs once.
        """CREATE TABLE leases (
            name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at REAL NOT NULL,
            last_slot INTEGER NOT NULL DEFAULT -1, last_run_at REAL)""",
        # User feedback on search results (monitor.feedback): one row per event id.
        """CREATE TABLE feedback (
            id INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, collection TEXT NOT NULL,
            query_id TEXT NOT NULL, model_version TEXT, kind TEXT NOT NULL, item_id TEXT,
            rank INTEGER, value REAL, shown TEXT NOT NULL DEFAULT '[]', query BLOB,
            created_at REAL NOT NULL)""",
        "CREATE INDEX feedback_coll ON feedback (collection, created_at)",
        "CREATE INDEX feedback_query ON feedback (collection, query_id)",
    ],
]


def check_set_name(name: str) -> str:
    """Validate a golden set name: the rules of collection names (1-64 letters, digits,
    ``_.-``, starting alphanumeric)."""
    from embedops.store.models import check_collection_name

    try:
        return check_collection_name(name)
    except InvalidInput as exc:
        raise InvalidInput(f"invalid golden set name {name!r}", exc.hint) from exc


@dataclass(frozen=True)
class GoldenSet:
    """A named set of queries with known relevant ids; ``collection`` is the one the server's
    scheduler evaluates it against (None: only run on request)."""

    name: str
    collection: str | None
    description: str
    created_at: float
    n_queries: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GoldenQuery:
    """One query and its relevant ids with grades (1.0 for plain relevance)."""

    query: str
    relevant: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunRecord:
    """A stored evaluation run of a golden set."""

    id: int
    set: str
    collection: str
    model_version: str | None
    snapshot: str | None
    params: dict[str, Any]
    scores: dict[str, float]
    n_queries: int
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class MonitorDB:
    """Golden sets, runs and drift reports of one workspace (thread-safe; one connection per
    thread). ``api`` encrypts the queries of sets bound to encrypted collections; without one,
    an engine of ``workspace`` is opened when such a set is first written or read."""

    def __init__(self, workspace: Workspace, api: Embedops | None = None) -> None:
        self.path: Path = workspace.monitor_db_path
        self.workspace = workspace
        self._api = api
        self._own_api: Embedops | None = None
        self._local = threading.local()
        self._migrate()

    def _engine(self) -> Embedops:
        if self._api is not None:
            return self._api
        if self._own_api is None:
            from embedops.engine import Embedops

            self._own_api = Embedops(self.workspace)
        return self._own_api

    def _encrypted(self, collection: str | None) -> bool:
        """Whether queries of a set bound to ``collection`` are stored encrypted (a collection
        that does not exist yet is not)."""
        if collection is None:
            return False
        from embedops.errors import CollectionNotFound

        try:
            return bool(self._engine().collection_info(collection).encrypted)
        except CollectionNotFound:
            return False

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=10, isolation_level=None,
                                       check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
            except sqlite3.DatabaseError as exc:
                raise IntegrityError(f"{self.path} is not a monitor database: {exc}",
                                     "move it aside; it is recreated empty") from exc
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _migrate(self) -> None:
        with self._write() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            version = int(conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
                          or 0)
            if version > len(MIGRATIONS):
                raise IntegrityError(
                    f"{self.path} has schema version {version}; this embedops knows up to "
                    f"{len(MIGRATIONS)}", "upgrade embedops to read this workspace")
            for number in range(version + 1, len(MIGRATIONS) + 1):
                for statement in MIGRATIONS[number - 1]:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``) on this thread's connection, for the
        monitor modules that keep their own tables here (leases, feedback)."""
        return self._write()

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (reads)."""
        return self._conn()

    def engine(self) -> Embedops:
        """The engine that seals and unseals texts of encrypted collections."""
        return self._engine()

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
        if self._own_api is not None:
            self._own_api.close()
            self._own_api = None

    # -- sets ----------------------------------------------------------------------------------
    def create_set(self, name: str, collection: str | None = None,
                   description: str = "") -> GoldenSet:
        """Create an empty golden set; refuses a name already taken."""
        from embedops.store.models import check_collection_name

        check_set_name(name)
        if collection is not None:
            check_collection_name(collection)
        try:
            with self._write() as conn:
                conn.execute(
                    "INSERT INTO golden_sets (name, collection, description, created_at) "
                    "VALUES (?, ?, ?, ?)", (name, collection, description, time.time()))
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists(f"golden set '{name}' already exists",
                                "add queries to it, or pick another name") from exc
        return self.get_set(name)

    def _set_id(self, name: str, conn: sqlite3.Connection | None = None) -> int:
        row = (conn or self._conn()).execute(
            "SELECT id FROM golden_sets WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"no golden set named '{name}'",
                           f"create it with 'embedops golden create {name}'")
        return int(row[0])

    def get_set(self, name: str) -> GoldenSet:
        """The golden set ``name`` with its query count."""
        set_id = self._set_id(name)
        row = self._conn().execute(
            "SELECT name, collection, description, created_at, "
            "(SELECT COUNT(*) FROM golden_queries q WHERE q.set_id = s.id) "
            "FROM golden_sets s WHERE id = ?", (set_id,)).fetchone()
        return GoldenSet(*row)

    def list_sets(self) -> list[GoldenSet]:
        """Every golden set, by name."""
        names = [r[0] for r in self._conn().execute("SELECT name FROM golden_sets ORDER BY name")]
        return [self.get_set(n) for n in names]

    def add_queries(self, name: str, queries: list[GoldenQuery]) -> int:
        """Append queries to set ``name`` in one transaction; returns the new query count.
        A set bound to an encrypted collection stores them encrypted with its key."""
        collection = self.get_set(name).collection
        stored: list[str | bytes] = [q.query for q in queries]
        if self._encrypted(collection):
            api, context = self._engine(), _query_context(name)
            stored = [api.seal(str(collection), q.query.encode(), context) or q.query
                      for q in queries]
        with self._write() as conn:
            set_id = self._set_id(name, conn)
            now = time.time()
            conn.executemany(
                "INSERT INTO golden_queries (set_id, query, relevant, added_at) VALUES (?,?,?,?)",
                [(set_id, text, json.dumps(q.relevant, sort_keys=True), now)
                 for text, q in zip(stored, queries, strict=True)])
        return self.get_set(name).n_queries

    def queries(self, name: str, api: Embedops | None = None) -> list[GoldenQuery]:
        """The queries of set ``name``, in the order they were added (decrypted with the key
        of the set's collection, through ``api`` if given, where they are stored encrypted)."""
        golden = self.get_set(name)
        set_id = self._set_id(name)
        rows = self._conn().execute(
            "SELECT query, relevant FROM golden_queries WHERE set_id = ? ORDER BY id", (set_id,))
        return [GoldenQuery(self._open_query(golden, q, api), json.loads(r)) for q, r in rows]

    def _open_query(self, golden: GoldenSet, stored: str | bytes, api: Embedops | None) -> str:
        if isinstance(stored, str):
            return stored
        if golden.collection is None:
            raise IntegrityError(f"golden set '{golden.name}' holds an encrypted query but "
                                 "names no collection (and so no key)", "re-create the set")
        plain = (api or self._engine()).unseal(golden.collection, bytes(stored),
                                               _query_context(golden.name))
        return plain.decode("utf-8")

    # -- runs ----------------------------------------------------------------------------------
    def record_run(self, name: str, collection: str, model_version: str | None,
                   snapshot: str | None, params: dict[str, Any], scores: dict[str, float],
                   n_queries: int) -> RunRecord:
        """Store one evaluation run of set ``name``; returns it with its id."""
        now = time.time()
        with self._write() as conn:
            set_id = self._set_id(name, conn)
            cur = conn.execute(
                "INSERT INTO golden_runs (set_id, collection, model_version, snapshot, params, "
                "scores, n_queries, created_at) VALUES (?,?,?,?,?,?,?,?)",
                (set_id, collection, model_version, snapshot, json.dumps(params, sort_keys=True),
                 json.dumps(scores, sort_keys=True), n_queries, now))
            run_id = int(cur.lastrowid or 0)
        return RunRecord(run_id, name, collection, model_version, snapshot, params, scores,
                         n_queries, now)

    def runs(self, name: str, collection: str | None = None, limit: int = 50) -> list[RunRecord]:
        """The latest ``limit`` runs of set ``name`` (newest first), optionally of one
        collection."""
        set_id = self._set_id(name)
        sql = ("SELECT id, collection, model_version, snapshot, params, scores, n_queries, "
               "created_at FROM golden_runs WHERE set_id = ?")
        args: list[Any] = [set_id]
        if collection:
            sql += " AND collection = ?"
            args.append(collection)
        rows = self._conn().execute(sql + " ORDER BY id DESC LIMIT ?", (*args, int(limit)))
        return [RunRecord(r[0], name, r[1], r[2], r[3], json.loads(r[4]), json.loads(r[5]),
                          r[6], r[7]) for r in rows]

    def latest_runs(self) -> list[RunRecord]:
        """The newest run of each (set, collection, model version): what /metrics exports."""
        rows = self._conn().execute(
            "SELECT r.id, s.name, r.collection, r.model_version, r.snapshot, r.params, r.scores, "
            "r.n_queries, r.created_at FROM golden_runs r JOIN golden_sets s ON s.id = r.set_id "
            "WHERE r.id IN (SELECT MAX(id) FROM golden_runs "
            "GROUP BY set_id, collection, model_version) ORDER BY r.id")
        return [RunRecord(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), json.loads(r[6]),
                          r[7], r[8]) for r in rows]

    # -- drift ---------------------------------------------------------------------------------
    def record_drift(self, collection: str, model_version: str | None,
                     report: dict[str, Any]) -> None:
        """Store a drift report of ``collection``."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO drift_reports (collection, model_version, report, created_at) "
                "VALUES (?,?,?,?)",
                (collection, model_version, json.dumps(report, sort_keys=True), time.time()))

    def latest_drift(self) -> dict[str, dict[str, Any]]:
        """{collection: {"model_version", "created_at", "report"}} of the newest reports."""
        rows = self._conn().execute(
            "SELECT collection, model_version, report, created_at FROM drift_reports "
            "WHERE id IN (SELECT MAX(id) FROM drift_reports GROUP BY collection)")
        return {c: {"model_version": m, "report": json.loads(r), "created_at": t}
                for c, m, r, t in rows}

    def drift_history(self, collection: str, limit: int = 200) -> list[dict[str, Any]]:
        """The latest ``limit`` drift reports of ``collection``, oldest first, each as
        ``{"model_version", "created_at", "report"}`` (the console's drift history)."""
        rows = self._conn().execute(
            "SELECT model_version, report, created_at FROM drift_reports WHERE collection = ? "
            "ORDER BY id DESC LIMIT ?", (collection, int(limit)))
        out = [{"model_version": m, "report": json.loads(r), "created_at": t} for m, r, t in rows]
        return out[::-1]


def _query_context(set_name: str) -> str:
    """What an encrypted golden query is bound to (a query moved to another set fails)."""
    return f"golden-query:{set_name}"
