"""API keys: created once, stored only as salted scrypt hashes in ``<workspace>/keys.db``.

A key reads ``eok_<id>_<secret>``. The id is not secret: it finds the row and names the key in
logs and the audit trail. The secret is 256 random bits; only ``scrypt(secret, salt)`` is kept,
so a stolen ``keys.db`` does not give working keys. Verifying with scrypt costs tens of
milliseconds, so a key verified once is remembered in memory (by a sha256 of the whole key);
the row is still read on every request, so a revocation from another process applies at once.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from embedops.config import Workspace
from embedops.errors import Forbidden, InvalidInput, NotFound, Unauthorized

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
"""


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

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class Principal:
    """Who made a request: a key id and its role (``anonymous`` when auth is off)."""

    key_id: str
    role: Role

    def require(self, needed: Role) -> None:
        """Raise Forbidden unless this principal's role is at least ``needed``."""
        if self.role < needed:
            raise Forbidden(
                f"key {self.key_id} has role '{self.role.name}'; this needs '{needed.name}'",
                f"create a key with 'embedops keys create --role {needed.name}'",
            )


def _hash(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, **_SCRYPT)


class KeyStore:
    """Create, list, revoke and verify API keys in one workspace (thread-safe)."""

    def __init__(self, workspace: Workspace | None = None) -> None:
        ws = (workspace or Workspace.from_env()).ensure()
        self.path: Path = ws.keys_db_path
        self._local = threading.local()
        self._verified: dict[str, bytes] = {}
        self._lock = threading.Lock()
        with self._conn() as conn:
            conn.executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            self._local.conn = conn
        return conn

    def create(self, role: str, name: str | None = None) -> tuple[str, KeyInfo]:
        """A new key: returns (the key, shown this once, and its stored info)."""
        Role.parse(role)
        name = name or f"{role}-key"
        if not _NAME.match(name):
            raise InvalidInput(
                f"invalid key name {name!r}", "use 1-64 letters, digits, spaces or '_.@-'"
            )
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        info = KeyInfo(key_id, name, role, time.time(), None)
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO api_keys (id, name, role, salt, hash, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (key_id, name, role, salt, _hash(secret, salt), info.created_at),
            )
        return f"{_PREFIX}_{key_id}_{secret}", info

    def list(self) -> list[KeyInfo]:
        """Every key, revoked ones included, oldest first."""
        rows = self._conn().execute(
            "SELECT id, name, role, created_at, revoked_at FROM api_keys ORDER BY created_at"
        )
        return [KeyInfo(*row) for row in rows]

    def revoke(self, key_id: str) -> KeyInfo:
        """Revoke a key by id (idempotent: revoking twice keeps the first time)."""
        with self._conn() as conn:
            conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (time.time(), key_id),
            )
            row = conn.execute(
                "SELECT id, name, role, created_at, revoked_at FROM api_keys WHERE id = ?",
                (key_id,),
            ).fetchone()
        if row is None:
            known = ", ".join(k.id for k in self.list()) or "none"
            raise NotFound(f"no API key with id '{key_id}' (known ids: {known})")
        return KeyInfo(*row)

    def verify(self, key: str) -> Principal:
        """The principal of a presented key, or Unauthorized (malformed, unknown, revoked)."""
        match = _KEY.match(key)
        if match is None:
            raise Unauthorized(
                "the API key is malformed", "keys look like eok_<id>_<secret>; see 'embedops keys'"
            )
        key_id, secret = match.groups()
        row = self._conn().execute(
            "SELECT role, salt, hash, revoked_at FROM api_keys WHERE id = ?", (key_id,)
        ).fetchone()
        if row is None or row[3] is not None:
            state = "unknown" if row is None else "revoked"
            raise Unauthorized(f"API key {key_id} is {state}", "ask an admin for a valid key")
        role, salt, stored, _ = row
        digest = hashlib.sha256(key.encode()).digest()
        with self._lock:
            known = self._verified.get(key_id)
        if known is None or not hmac.compare_digest(known, digest):
            if not hmac.compare_digest(_hash(secret, salt), stored):
                raise Unauthorized(f"API key {key_id} is wrong", "ask an admin for a valid key")
            with self._lock:
                self._verified[key_id] = digest
        return Principal(key_id, Role[role])
