"""API keys: created once, stored only as salted scrypt hashes in ``<workspace>/keys.db``.

A key reads ``eok_<id>_<secret>``. The id is not secret: it finds the row and names the key in
logs and the audit trail. The secret is 256 random bits; only ``scrypt(secret, salt)`` is kept,
so a stolen ``keys.db`` does not give working keys. Verifying with scrypt costs tens of
milliseconds, so a key verified once is remembered in memory (by a sha256 of the whole key);
the row is still read on every request, so a revocation from another process applies at once.

Scopes. A key may carry a set of collections and of name prefixes (a tenant's collections):
it then sees only those (``Principal.may_see``); a key with neither sees every collection.
Keys may expire (``expires_at``), and ``rotate`` makes a new key for the same principal (same
name, role, scope and quotas) while the old one stays valid for an overlap, then expires.

Reads of ``keys.db``: rows are cached per connection and the cache is dropped whenever SQLite's
``PRAGMA data_version`` says another connection (another thread, worker or the CLI) committed,
so a revocation is seen by every worker on its next request, at the cost of one pragma per
request. ``last_used_at`` is written at most once a minute per key and process.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedops.config import Workspace
from embedops.errors import CollectionNotFound, Forbidden, InvalidInput, NotFound, Unauthorized

_PREFIX = "eok"
_KEY = re.compile(r"^eok_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_NAME = re.compile(r"^[\w .@-]{1,64}$")
# scrypt cost: ~16 MiB and a few tens of ms per verification (OWASP's minimum is N=2**17 for
# passwords; keys here are 256 random bits, so brute force is out of reach at any cost).
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    salt BLOB NOT NULL,
    hash BLOB NOT NULL,
    created_at REAL NOT NULL,
    revoked_at REAL
);
CREATE TABLE IF NOT EXISTS key_usage (
    key_id TEXT NOT NULL,
    day INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    PRIMARY KEY (key_id, day)
);
"""
# Columns added by schema version 2 (scopes, expiry, last use, per-key quotas); a keys.db made
# before them is migrated in place by ``ALTER TABLE ... ADD COLUMN`` (old keys: unscoped).
_COLUMNS_V2 = {
    "collections": "TEXT",  # JSON list, or NULL: any collection
    "prefixes": "TEXT",  # JSON list, or NULL
    "expires_at": "REAL",
    "last_used_at": "REAL",
    "rate_limit": "TEXT",  # the ``limits`` notation, or NULL: the role's limit
    "max_items": "INTEGER",  # items stored in the key's collections, or NULL
    "tokens_per_day": "INTEGER",  # embed tokens per UTC day, or NULL
}
_SCHEMA_VERSION = 2
_ROW = ("id, name, role, created_at, revoked_at, collections, prefixes, expires_at, "
        "last_used_at, rate_limit, max_items, tokens_per_day")
_COLL = re.compile(r"^[\w.-]{1,64}$")
_USED_EVERY_S = 60.0


class Role(enum.IntEnum):
    """What a key may do; each role includes the ones below it."""

    read = 1
    write = 2
    admin = 3

    @classmethod
    def parse(cls, value: str) -> Role:
        """``"read"|"write"|"admin"`` → Role, or InvalidInput naming the choices."""
        try:
            return cls[value]
        except KeyError:
            raise InvalidInput(
                f"unknown role '{value}'", "use one of read, write, admin"
            ) from None


@dataclass(frozen=True)
class KeyInfo:
    """What is stored about a key (never the key itself)."""

    id: str
    name: str
    role: str
    created_at: float
    revoked_at: float | None
    collections: list[str] | None = None
    prefixes: list[str] | None = None
    expires_at: float | None = None
    last_used_at: float | None = None
    rate_limit: str | None = None
    max_items: int | None = None
    tokens_per_day: int | None = None

    @property
    def active(self) -> bool:
        """Neither revoked nor expired."""
        unexpired = self.expires_at is None or self.expires_at > time.time()
        return self.revoked_at is None and unexpired

    @property
    def scoped(self) -> bool:
        """Whether the key sees only some collections."""
        return self.collections is not None or self.prefixes is not None


def _info(row: Iterable[Any]) -> KeyInfo:
    (key_id, name, role, created, revoked, colls, prefixes, expires, used, rate, items,
     tokens) = row
    return KeyInfo(key_id, name, role, created, revoked,
                   json.loads(colls) if colls is not None else None,
                   json.loads(prefixes) if prefixes is not None else None,
                   expires, used, rate, items, tokens)


@dataclass(frozen=True)
class Principal:
    """Who made a request: a key id, its role and scope (``anonymous`` when auth is off).

    ``collections`` and ``prefixes`` are both None for a key that sees every collection;
    otherwise the key sees a collection named in ``collections`` or starting with a prefix.
    The quota fields are None when the key has no quota of that kind."""

    key_id: str
    role: Role
    collections: frozenset[str] | None = None
    prefixes: tuple[str, ...] | None = None
    rate_limit: str | None = None
    max_items: int | None = None
    tokens_per_day: int | None = None

    @property
    def scoped(self) -> bool:
        """Whether this principal sees only some collections."""
        return self.collections is not None or self.prefixes is not None

    def may_see(self, collection: str) -> bool:
        """Whether this principal may see (read, write or administer) ``collection``."""
        if not self.scoped:
            return True
        return collection in (self.collections or ()) or any(
            collection.startswith(p) for p in self.prefixes or ()
        )

    def hidden(self, collection: str) -> CollectionNotFound:
        """The error for a collection this principal may not see, or that does not exist: the
        same for both, naming no other collection, so it reveals nothing."""
        return CollectionNotFound(
            f"no collection named {collection!r}",
            "GET /v1/collections lists the collections this key may see",
        )

    def require_scope(self, collection: str) -> None:
        """Forbidden unless ``collection`` is in this principal's scope (to create one: the
        name is the caller's own, so refusing it reveals nothing)."""
        if not self.may_see(collection):
            raise Forbidden(
                f"key {self.key_id} may not create collections outside its scope",
                "name the collection with one of the key's prefixes, or use another key",
            )

    def require(self, needed: Role) -> None:
        """Raise Forbidden unless this principal's role is at least ``needed``."""
        if self.role < needed:
            raise Forbidden(
                f"key {self.key_id} has role '{self.role.name}'; this needs '{needed.name}'",
                f"create a key with 'embedops keys create --role {needed.name}'",
            )


def _hash(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, **_SCRYPT)


def _names(values: Iterable[str] | None, what: str) -> list[str] | None:
    """``values`` as a sorted list of valid collection names or prefixes (None stays None)."""
    if values is None:
        return None
    out = sorted({v.strip() for v in values})
    for v in out:
        if not _COLL.match(v):
            raise InvalidInput(f"invalid {what} {v!r} for a key's scope",
                               "use 1-64 letters, digits or '_.-'")
    return out


class KeyStore:
    """Create, list, rotate, revoke and verify API keys in one workspace (thread-safe)."""

    def __init__(self, workspace: Workspace | None = None) -> None:
        ws = (workspace or Workspace.from_env()).ensure()
        self.path: Path = ws.keys_db_path
        self._local = threading.local()
        self._verified: dict[str, bytes] = {}
        self._used: dict[str, float] = {}
        self._lock = threading.Lock()
        with self._conn() as conn:
            conn.executescript(_SCHEMA)
            self._migrate(conn)

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        """Bring a keys.db of any earlier schema to ``_SCHEMA_VERSION`` (idempotent)."""
        if conn.execute("PRAGMA user_version").fetchone()[0] >= _SCHEMA_VERSION:
            return
        have = {row[1] for row in conn.execute("PRAGMA table_info(api_keys)")}
        for column, kind in _COLUMNS_V2.items():
            if column not in have:
                conn.execute(f"ALTER TABLE api_keys ADD COLUMN {column} {kind}")
        conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            self._local.conn = conn
            self._local.rows = {}
            self._local.version = None
        return conn

    def _rows(self) -> dict[str, tuple[Any, ...]]:
        """This connection's row cache, emptied when another connection has committed."""
        version = self._conn().execute("PRAGMA data_version").fetchone()[0]
        if version != self._local.version:
            self._local.rows = {}
            self._local.version = version
        rows: dict[str, tuple[Any, ...]] = self._local.rows
        return rows

    def _forget(self) -> None:
        """Drop this connection's cache after it wrote (its own commits leave data_version)."""
        self._conn()
        self._local.rows = {}

    def create(
        self, role: str, name: str | None = None, *, collections: Iterable[str] | None = None,
        prefixes: Iterable[str] | None = None, expires_at: float | None = None,
        rate_limit: str | None = None, max_items: int | None = None,
        tokens_per_day: int | None = None,
    ) -> tuple[str, KeyInfo]:
        """A new key: returns (the key, shown this once, and its stored info).

        ``collections`` and ``prefixes`` scope it (None for both: every collection; an empty
        list: none); ``expires_at`` (epoch seconds) ends it; the quota arguments bound it."""
        Role.parse(role)
        name = name or f"{role}-key"
        if not _NAME.match(name):
            raise InvalidInput(
                f"invalid key name {name!r}", "use 1-64 letters, digits, spaces or '_.@-'"
            )
        colls, prefs = _names(collections, "collection"), _names(prefixes, "prefix")
        if expires_at is not None and expires_at <= time.time():
            raise InvalidInput("the key's expiry is in the past", "give a time in the future")
        if rate_limit is not None:
            from embedops.serve.ratelimit import parse_limit

            parse_limit(rate_limit, "the key's rate limit")
        for what, value in (("max items", max_items), ("tokens per day", tokens_per_day)):
            if value is not None and value < 0:
                raise InvalidInput(f"{what} must be 0 or more, not {value}")
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        info = KeyInfo(key_id, name, role, time.time(), None, colls, prefs, expires_at, None,
                       rate_limit, max_items, tokens_per_day)
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO api_keys (id, name, role, salt, hash, created_at, collections, "
                "prefixes, expires_at, rate_limit, max_items, tokens_per_day) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key_id, name, role, salt, _hash(secret, salt), info.created_at,
                 None if colls is None else json.dumps(colls),
                 None if prefs is None else json.dumps(prefs),
                 expires_at, rate_limit, max_items, tokens_per_day),
            )
        self._forget()
        return f"{_PREFIX}_{key_id}_{secret}", info

    def list(self) -> list[KeyInfo]:
        """Every key, revoked and expired ones included, oldest first."""
        rows = self._conn().execute(f"SELECT {_ROW} FROM api_keys ORDER BY created_at")
        return [_info(row) for row in rows]

    def get(self, key_id: str) -> KeyInfo:
        """The stored info of one key, or NotFound."""
        row = self._conn().execute(f"SELECT {_ROW} FROM api_keys WHERE id = ?",
                                   (key_id,)).fetchone()
        if row is None:
            known = ", ".join(k.id for k in self.list()) or "none"
            raise NotFound(f"no API key with id '{key_id}' (known ids: {known})")
        return _info(row)

    def revoke(self, key_id: str) -> KeyInfo:
        """Revoke a key by id (idempotent: revoking twice keeps the first time)."""
        with self._conn() as conn:
            conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (time.time(), key_id),
            )
        self._forget()
        return self.get(key_id)

    def rotate(self, key_id: str, overlap_s: float = 86400.0) -> tuple[str, KeyInfo, KeyInfo]:
        """A new key for the same principal (name, role, scope, quotas and expiry); the old
        key stays valid for ``overlap_s`` more seconds (or until its own earlier expiry).
        Returns (the new key, its info, the old key's updated info)."""
        old = self.get(key_id)
        if not old.active:
            raise InvalidInput(f"key {key_id} is revoked or expired; it cannot be rotated",
                               "create a new key with 'embedops keys create'")
        key, new = self.create(
            old.role, old.name, collections=old.collections, prefixes=old.prefixes,
            expires_at=old.expires_at, rate_limit=old.rate_limit, max_items=old.max_items,
            tokens_per_day=old.tokens_per_day,
        )
        until = time.time() + max(0.0, overlap_s)
        with self._conn() as conn:
            conn.execute(
                "UPDATE api_keys SET expires_at = MIN(COALESCE(expires_at, ?), ?) WHERE id = ?",
                (until, until, key_id),
            )
        self._forget()
        return key, new, self.get(key_id)

    def verify(self, key: str) -> Principal:
        """The principal of a presented key, or Unauthorized (malformed, unknown, revoked,
        expired)."""
        match = _KEY.match(key)
        if match is None:
            raise Unauthorized(
                "the API key is malformed", "keys look like eok_<id>_<secret>; see 'embedops keys'"
            )
        key_id, secret = match.groups()
        rows = self._rows()
        row = rows.get(key_id)
        if row is None:
            row = self._conn().execute(
                "SELECT role, salt, hash, revoked_at, expires_at, collections, prefixes, "
                "rate_limit, max_items, tokens_per_day FROM api_keys WHERE id = ?", (key_id,)
            ).fetchone()
            if row is not None:
                rows[key_id] = row
        now = time.time()
        if row is None or row[3] is not None or (row[4] is not None and row[4] <= now):
            state = "unknown" if row is None else "revoked" if row[3] is not None else "expired"
            raise Unauthorized(f"API key {key_id} is {state}", "ask an admin for a valid key")
        role, salt, stored, _, _, colls, prefixes, rate, items, tokens = row
        digest = hashlib.sha256(key.encode()).digest()
        with self._lock:
            known = self._verified.get(key_id)
        if known is None or not hmac.compare_digest(known, digest):
            if not hmac.compare_digest(_hash(secret, salt), stored):
                raise Unauthorized(f"API key {key_id} is wrong", "ask an admin for a valid key")
            with self._lock:
                self._verified[key_id] = digest
        self._touch(key_id, now)
        return Principal(
            key_id, Role[role],
            frozenset(json.loads(colls)) if colls is not None else None,
            tuple(json.loads(prefixes)) if prefixes is not None else None,
            rate, items, tokens,
        )

    def spend_tokens(self, key_id: str, day: int, tokens: int, limit: int) -> tuple[bool, int]:
        """Spend ``tokens`` of ``key_id``'s ``limit`` for UTC ``day`` (days since the epoch)
        in one transaction, shared by every process: (True, used after) or (False, used)."""
        conn = self._conn()
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute("SELECT tokens FROM key_usage WHERE key_id = ? AND day = ?",
                               (key_id, day)).fetchone()
            used = int(row[0]) if row else 0
            if used + tokens > limit:
                return False, used
            conn.execute(
                "INSERT INTO key_usage (key_id, day, tokens) VALUES (?, ?, ?) ON CONFLICT "
                "(key_id, day) DO UPDATE SET tokens = tokens + excluded.tokens",
                (key_id, day, tokens))
        return True, used + tokens

    def usage(self, key_id: str, day: int) -> int:
        """Embed tokens ``key_id`` spent on UTC ``day``."""
        row = self._conn().execute("SELECT tokens FROM key_usage WHERE key_id = ? AND day = ?",
                                   (key_id, day)).fetchone()
        return int(row[0]) if row else 0

    def _touch(self, key_id: str, now: float) -> None:
        """Record the key's last use, at most once every ``_USED_EVERY_S`` per process."""
        with self._lock:
            if now - self._used.get(key_id, 0.0) < _USED_EVERY_S:
                return
            self._used[key_id] = now
        conn = self._conn()
        conn.execute("PRAGMA busy_timeout = 200")  # advisory: never hold a request for long
        try:
            with conn:
                conn.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (now, key_id))
        except sqlite3.OperationalError:  # busy: skip this time, the request goes on
            return
        finally:
            conn.execute("PRAGMA busy_timeout = 30000")
