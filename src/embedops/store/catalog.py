"""The catalog: collections, items, vectors per model version and lineage in one SQLite file.

SQLite in WAL mode with foreign keys; every multi-row write is one ``BEGIN IMMEDIATE``
transaction, so a killed process leaves the catalog as it was before or after a write, never
between. Each thread gets its own connection (the web server calls from a thread pool).
Connections live in ``embedops.store.connection``, collection rows in
``embedops.store.collection_rows`` and item operations in ``embedops.store.items``; this class
holds collections, keys and settings, and delegates.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from embedops.config import Workspace
from embedops.errors import (
    AlreadyExists,
    EncryptionKeyError,
    IntegrityError,
    InvalidInput,
    Unavailable,
)
from embedops.store import items as _items
from embedops.store.codec import RowCodec
from embedops.store.collection_rows import Coll, all_colls, find_coll
from embedops.store.connection import CatalogDB
from embedops.store.crypto import KEY_ENV, KEY_FILE_ENV, Cipher, load_key
from embedops.store.models import (
    CollectionInfo,
    Item,
    ItemIn,
    canonical_metadata,
    check_collection_name,
    check_metric,
)
from embedops.store.schema import migrate

_ENCRYPT_DEFAULT = "encrypt_new_collections"


class Catalog:
    """The versioned embedding store of one workspace (``workspace.catalog_path``).

    ``key`` is the 32-byte encryption key; when None it is read from ``$EMBEDOPS_KEY`` or
    ``$EMBEDOPS_KEY_FILE`` the first time an encrypted collection is touched. A write waits up
    to ``timeout_s`` for another writer, then raises Unavailable.
    """

    def __init__(
        self, workspace: Workspace | None = None, key: bytes | None = None, *,
        timeout_s: float = 60.0,
    ) -> None:
        self.workspace = (workspace or Workspace.from_env()).ensure()
        self.path = self.workspace.catalog_path
        self._cipher: Cipher | None = Cipher(key) if key is not None else None
        self._db = CatalogDB(self.path, max(1, int(timeout_s * 1000)))
        try:
            migrate(self._conn())
        except sqlite3.OperationalError as exc:
            self.close()
            raise Unavailable(
                f"cannot open the catalog {self.path} ({exc})",
                "another process holds a long write, or the folder is not writable; retry",
            ) from exc
        except sqlite3.DatabaseError as exc:
            self.close()
            raise IntegrityError(
                f"{self.path} is not a readable embedops catalog ({exc})",
                "restore it from a backup, or point --home / $EMBEDOPS_HOME at another workspace",
            ) from exc

    # -- connections and transactions ------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        return self._db.conn()

    def _write(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return self._db.write()

    def close(self) -> None:
        """Close every connection this catalog opened (checkpointing the WAL)."""
        self._db.close()

    def checkpoint(self) -> None:
        """Fold the write-ahead log into ``catalog.db`` and truncate it."""
        self._db.checkpoint()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- keys ------------------------------------------------------------------------------
    def _require_cipher(self, what: str) -> Cipher:
        if self._cipher is None:
            key = load_key()
            if key is None:
                raise EncryptionKeyError(
                    f"{what} needs an encryption key, and none is configured",
                    f"set {KEY_ENV} (base64 of 32 bytes) or {KEY_FILE_ENV}; "
                    "'embedops collections keygen' prints a new key",
                )
            self._cipher = Cipher(key)
        return self._cipher

    def _codec(self, coll: Coll) -> RowCodec:
        if not coll.info.encrypted:
            return RowCodec(coll.info.name, None)
        cipher = self._require_cipher(f"collection '{coll.info.name}' is encrypted and")
        if coll.key_id and cipher.key_id != coll.key_id:
            raise EncryptionKeyError(
                f"the configured key (key id {cipher.key_id}) is not the key collection "
                f"'{coll.info.name}' was encrypted with (key id {coll.key_id})",
                f"set {KEY_ENV} or {KEY_FILE_ENV} to that collection's key",
            )
        return RowCodec(coll.info.name, cipher)

    def cipher(self, collection: str) -> Cipher | None:
        """The cipher of an encrypted collection (the configured key checked against it), None
        for a plain one: for data derived from its items and kept outside the catalog."""
        return self._codec(self._coll(collection)).cipher

    # -- settings --------------------------------------------------------------------------
    def encrypt_by_default(self) -> bool:
        """Whether new collections are encrypted unless told otherwise (workspace setting)."""
        row = self._conn().execute(
            "SELECT value FROM settings WHERE key = ?", (_ENCRYPT_DEFAULT,)
        ).fetchone()
        return bool(row and row[0] == "1")

    def set_encrypt_by_default(self, on: bool) -> None:
        """Turn workspace-wide encryption of new collections on or off (needs a key to turn on)."""
        if on:
            self._require_cipher("encrypting new collections")
        with self._write() as conn:
            conn.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (_ENCRYPT_DEFAULT, "1" if on else "0"),
            )

    # -- collections -----------------------------------------------------------------------
    def _coll(self, name: str, conn: sqlite3.Connection | None = None) -> Coll:
        return find_coll(conn or self._conn(), name)

    def create_collection(
        self,
        name: str,
        model_version: str,
        metric: str = "cosine",
        dim: int = 0,
        encrypted: bool | None = None,
        redact: bool = False,
    ) -> CollectionInfo:
        """Create an empty collection embedded by ``model_version`` (``name@N``) of ``dim``.

        ``encrypted=None`` follows the workspace setting (``set_encrypt_by_default``);
        ``redact`` replaces PII in every text written to the collection (``_redacted``).
        """
        check_collection_name(name)
        check_metric(metric)
        if not isinstance(dim, int) or dim <= 0:
            raise InvalidInput(f"dim must be a positive integer, got {dim!r}")
        if not model_version or not isinstance(model_version, str):
            raise InvalidInput("a collection needs a model version such as 'w2v@1'")
        if encrypted is None:
            encrypted = self.encrypt_by_default()
        key_id = None
        if encrypted:
            key_id = self._require_cipher(f"encrypted collection '{name}'").key_id
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM collections WHERE name = ?", (name,)).fetchone():
                raise AlreadyExists(
                    f"collection {name!r} already exists",
                    "pick another name or delete it with 'embedops collections delete'",
                )
            conn.execute(
                "INSERT INTO collections (name, model_version, metric, dim, encrypted, key_id, "
                "created_at, redact) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name, model_version, metric, dim, int(encrypted), key_id, time.time(),
                 int(bool(redact))),
            )
            pk = conn.execute("SELECT id FROM collections WHERE name = ?", (name,)).fetchone()[0]
            _items.register_dim(conn, pk, model_version, dim)
        return self.get_collection(name)

    def get_collection(self, name: str) -> CollectionInfo:
        """The collection named ``name`` (CollectionNotFound lists the known names)."""
        return self._coll(name).info

    def list_collections(self) -> list[CollectionInfo]:
        """Every collection, by name, with live item counts."""
        return [coll.info for coll in all_colls(self._conn())]

    def delete_collection(self, name: str) -> CollectionInfo:
        """Delete a collection with its items, vectors and lineage (one transaction)."""
        info = self.get_collection(name)
        with self._write() as conn:
            conn.execute("DELETE FROM collections WHERE name = ?", (name,))
        return info

    def set_active_version(self, name: str, ref: str, dim: int | None = None) -> CollectionInfo:
        """Make ``ref`` the version that serves ``name`` (clears it as candidate).

        The dimension comes from ``dim``, else from vectors of ``ref`` already stored, else
        from the model registry.
        """
        with self._write() as conn:
            coll = self._coll(name, conn)
            new_dim = _items.version_dim(conn, coll.pk, ref, dim, self.workspace)
            conn.execute(
                "UPDATE collections SET model_version = ?, dim = ?, candidate_version = "
                "CASE WHEN candidate_version = ? THEN NULL ELSE candidate_version END "
                "WHERE id = ?",
                (ref, new_dim, ref, coll.pk),
            )
        return self.get_collection(name)

    def set_candidate_version(self, name: str, ref: str | None) -> CollectionInfo:
        """Set (or clear, with None) the rollout candidate version of ``name``."""
        with self._write() as conn:
            coll = self._coll(name, conn)
            if ref is not None:
                _items.version_dim(conn, coll.pk, ref, None, self.workspace)
            conn.execute(
                "UPDATE collections SET candidate_version = ? WHERE id = ?", (ref, coll.pk)
            )
        return self.get_collection(name)

    def switch_versions(self, name: str, active: str, candidate: str | None) -> CollectionInfo:
        """Set the active and the candidate version of ``name`` in one transaction (a rollout's
        promotion or rollback: no reader sees one changed without the other)."""
        with self._write() as conn:
            coll = self._coll(name, conn)
            dim = _items.version_dim(conn, coll.pk, active, None, self.workspace)
            if candidate is not None:
                _items.version_dim(conn, coll.pk, candidate, None, self.workspace)
            conn.execute(
                "UPDATE collections SET model_version = ?, dim = ?, candidate_version = ? "
                "WHERE id = ?",
                (active, dim, candidate, coll.pk),
            )
        return self.get_collection(name)

    def rekey(self, name: str, new_key: bytes) -> CollectionInfo:
        """Re-encrypt collection ``name`` under ``new_key`` (needs the current key), in one
        transaction; afterwards this catalog uses ``new_key``."""
        from embedops.store.rekey import rekey_collection

        new_cipher = Cipher(new_key)
        with self._write() as conn:
            coll = self._coll(name, conn)
            rekey_collection(conn, coll.pk, coll.info, self._codec(coll), new_cipher)
        self._cipher = new_cipher
        self.checkpoint()
        return self.get_collection(name)

    # -- items -----------------------------------------------------------------------------
    def plan_upsert(self, collection: str, items: Sequence[ItemIn]) -> list[ItemIn]:
        """The items whose content hash is new or changed (or that were deleted): only these
        need embedding. Order kept."""
        coll = self._coll(collection)
        return _items.plan(self._conn(), coll.pk, self._codec(coll), _redacted(coll, items))

    def upsert(
        self,
        collection: str,
        items: Sequence[ItemIn],
        vectors: Mapping[str, np.ndarray],
        run_id: str | None = None,
        source: str | None = None,
        lines: Sequence[int] | None = None,
    ) -> int:
        """Store ``items`` with their vectors (``{model_version: (n, dim) array}``, rows
        aligned with ``items``) and lineage, in one transaction. Returns the items written.

        A changed item loses its vectors of versions not given here (they are stale); they
        show up in ``missing_vectors`` for backfill.
        """
        if lines is not None and len(lines) != len(items):
            raise InvalidInput(f"{len(lines)} line numbers for {len(items)} items")
        with self._write() as conn:
            coll = self._coll(collection, conn)
            return _items.upsert(
                conn, coll.pk, self._codec(coll), _redacted(coll, items), vectors, run_id,
                source, lines,
            )

    def delete(self, collection: str, ids: Sequence[str]) -> int:
        """Soft-delete live items (timestamped, vectors dropped); returns how many."""
        with self._write() as conn:
            coll = self._coll(collection, conn)
            return _items.soft_delete(conn, coll.pk, ids)

    def get_items(
        self, collection: str, ids: Sequence[str], include_deleted: bool = False
    ) -> list[Item]:
        """Items by id, in the order asked; missing (and, by default, deleted) ids skipped."""
        coll = self._coll(collection)
        return _items.get(self._conn(), coll.pk, self._codec(coll), ids, include_deleted)

    def iter_items(
        self, collection: str, batch: int = 1000, include_deleted: bool = False
    ) -> Iterator[Item]:
        """Every (live) item, in insertion order, read ``batch`` rows at a time."""
        coll = self._coll(collection)
        yield from _items.iterate(self._conn(), coll.pk, self._codec(coll), batch, include_deleted)

    def all_ids(self, collection: str, include_deleted: bool = False) -> list[str]:
        """Ids of every (live) item, in insertion order."""
        coll = self._coll(collection)
        return _items.all_ids(self._conn(), coll.pk, include_deleted)

    # -- vectors ---------------------------------------------------------------------------
    def load_vectors(
        self, collection: str, model_version: str, ids: Sequence[str] | None = None
    ) -> tuple[list[str], np.ndarray]:
        """``(ids, float32 (n, dim))`` of live items with a ``model_version`` vector; with
        ``ids``, in that order and skipping those without one; else in insertion order."""
        coll = self._coll(collection)
        return _items.load_vectors(self._conn(), coll, self._codec(coll), model_version, ids)

    def missing_vectors(self, collection: str, model_version: str) -> list[str]:
        """Ids of live items that lack a ``model_version`` vector (what a backfill must embed)."""
        coll = self._coll(collection)
        return _items.missing_vectors(self._conn(), coll.pk, model_version)

    def put_vectors(
        self, collection: str, model_version: str, ids: Sequence[str], vectors: np.ndarray
    ) -> int:
        """Store ``model_version`` vectors for live items (others are skipped); one
        transaction; returns how many were written."""
        with self._write() as conn:
            coll = self._coll(collection, conn)
            return _items.put_vectors(conn, coll.pk, self._codec(coll), model_version, ids, vectors)

    def changes_since(self, collection: str, ts: float) -> list[tuple[str, float, bool]]:
        """``(id, updated_at, deleted)`` of items written or deleted after ``ts``, oldest first."""
        coll = self._coll(collection)
        return _items.changes_since(self._conn(), coll.pk, ts)

    # -- ingest runs -----------------------------------------------------------------------
    def start_run(self, collection: str, run_id: str, source: str | None) -> None:
        """Record that ingest run ``run_id`` of ``source`` began."""
        with self._write() as conn:
            coll = self._coll(collection, conn)
            conn.execute(
                "INSERT INTO ingest_runs (run_id, collection_id, source, started_at) "
                "VALUES (?, ?, ?, ?)",
                (run_id, coll.pk, source, time.time()),
            )

    def finish_run(self, collection: str, run_id: str, report: dict[str, Any]) -> None:
        """Record the report of a finished ingest run (encrypted in an encrypted collection:
        its messages may quote field names or values)."""
        with self._write() as conn:
            coll = self._coll(collection, conn)
            stored = self._codec(coll).meta_out(f"run:{run_id}", canonical_metadata(report))
            conn.execute(
                "UPDATE ingest_runs SET finished_at = ?, report = ? "
                "WHERE run_id = ? AND collection_id = ?",
                (time.time(), stored, run_id, coll.pk),
            )

    def stats(self, collection: str) -> dict[str, Any]:
        """Counts for ``collections show``: live/deleted items, vectors per version, last runs."""
        coll = self._coll(collection)
        try:
            codec: RowCodec | None = self._codec(coll)
        except EncryptionKeyError:
            codec = None  # counts need no key; run reports are shown as encrypted
        return {**coll.info.to_dict(), **_items.stats(self._conn(), coll.pk, codec)}


def _redacted(coll: Coll, items: Sequence[ItemIn]) -> Sequence[ItemIn]:
    """``items`` with PII replaced in their texts when the collection's policy says so. Every
    write passes here twice (plan, then upsert); redaction is idempotent (a placeholder holds
    nothing to redact), so the content hash is the redacted text's and the caller embeds the
    redacted texts ``plan_upsert`` returns."""
    if not coll.info.redact:
        return items
    from dataclasses import replace

    from embedops.text.redact import redact

    out = []
    for item in items:
        clean = redact(item.text).text
        out.append(item if clean == item.text else replace(item, text=clean))
    return out
