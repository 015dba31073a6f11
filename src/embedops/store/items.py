"""Item, vector and lineage operations of the catalog, on one connection inside the caller's
transaction (``Catalog`` opens it). Internal: use ``embedops.store.catalog.Catalog``."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from embedops.config import Workspace
from embedops.errors import DimensionMismatch, InvalidInput
from embedops.store.codec import RowCodec
from embedops.store.models import Item, ItemIn, canonical_metadata

if TYPE_CHECKING:
    from embedops.store.collection_rows import Coll

_CHUNK = 500


def _chunks(seq: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


def _marks(n: int) -> str:
    return ",".join("?" * n)


# -- model versions of a collection ---------------------------------------------------------
def register_dim(conn: sqlite3.Connection, pk: int, version: str, dim: int) -> None:
    """Remember ``version``'s dimension in this collection; refuse a different one."""
    row = conn.execute(
        "SELECT dim FROM collection_versions WHERE collection_id = ? AND model_version = ?",
        (pk, version),
    ).fetchone()
    if row is None:
        conn.execute(
            "INSERT INTO collection_versions (collection_id, model_version, dim, first_at) "
            "VALUES (?, ?, ?, ?)",
            (pk, version, dim, time.time()),
        )
    elif int(row[0]) != dim:
        raise DimensionMismatch(
            f"vectors of {version} have dim {dim}, but this collection stores {version} "
            f"vectors of dim {row[0]}",
            f"embed with {version} itself, or use a new model version",
        )


def known_dim(conn: sqlite3.Connection, pk: int, version: str) -> int | None:
    """The dimension of ``version`` in this collection, if any vector or the setup named one."""
    row = conn.execute(
        "SELECT dim FROM collection_versions WHERE collection_id = ? AND model_version = ?",
        (pk, version),
    ).fetchone()
    return int(row[0]) if row else None


def version_dim(
    conn: sqlite3.Connection, pk: int, ref: str, dim: int | None, workspace: Workspace
) -> int:
    """The dimension of ``ref``: ``dim``, else what is stored, else the registry's manifest."""
    stored = known_dim(conn, pk, ref)
    if dim is None and stored is None:
        from embedops.models.registry import Registry

        mv = Registry(workspace).get(ref)
        if mv.ref != ref:
            raise InvalidInput(f"'{ref}' does not name a version", f"write {mv.ref}")
        dim = mv.dim
    chosen = int(dim if dim is not None else stored)  # type: ignore[arg-type]
    register_dim(conn, pk, ref, chosen)
    return chosen


def _check_vectors(
    conn: sqlite3.Connection, pk: int, vectors: Mapping[str, np.ndarray], n: int
) -> dict[str, np.ndarray]:
    checked: dict[str, np.ndarray] = {}
    for version, array in vectors.items():
        arr = np.asarray(array, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[0] != n:
            raise InvalidInput(
                f"vectors of {version} have shape {arr.shape}, expected ({n}, dim) for {n} items"
            )
        if not np.isfinite(arr).all():
            raise InvalidInput(f"vectors of {version} contain NaN or infinite values")
        register_dim(conn, pk, version, int(arr.shape[1]))
        checked[version] = arr
    return checked


# -- writing -------------------------------------------------------------------------------
def _existing(conn: sqlite3.Connection, pk: int, ids: Sequence[str]) -> dict[str, tuple]:
    """``{id: (item pk, content hash, deleted_at)}`` for stored ids."""
    out: dict[str, tuple] = {}
    for chunk in _chunks(list(ids)):
        rows = conn.execute(
            "SELECT item_id, pk, content_hash, deleted_at FROM items "
            f"WHERE collection_id = ? AND item_id IN ({_marks(len(chunk))})",
            (pk, *chunk),
        )
        out.update({r[0]: (r[1], r[2], r[3]) for r in rows})
    return out


def plan(
    conn: sqlite3.Connection, pk: int, codec: RowCodec, items: Sequence[ItemIn]
) -> list[ItemIn]:
    """Items whose content is new, changed, or deleted since (order kept)."""
    stored = _existing(conn, pk, [it.id for it in items])
    out = []
    for item in items:
        row = stored.get(item.id)
        if row is None or row[2] is not None or row[1] != codec.hash(item):
            out.append(item)
    return out


def upsert(
    conn: sqlite3.Connection,
    pk: int,
    codec: RowCodec,
    items: Sequence[ItemIn],
    vectors: Mapping[str, np.ndarray],
    run_id: str | None,
    source: str | None,
    lines: Sequence[int] | None,
) -> int:
    """Write items, vectors and lineage (inside the caller's transaction)."""
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise InvalidInput(f"item id {dup!r} appears twice in one upsert", "send each id once")
    checked = _check_vectors(conn, pk, vectors, len(items))
    stored = _existing(conn, pk, ids)
    now = time.time()
    revived = sum(1 for i in ids if i not in stored or stored[i][2] is not None)
    conn.execute("UPDATE collections SET live_count = live_count + ? WHERE id = ?", (revived, pk))
    changed: list[int] = []
    for row_no, item in enumerate(items):
        digest = codec.hash(item)
        item_pk, wrote = _write_item(conn, pk, codec, item, digest, stored.get(item.id), now,
                                     checked)
        if wrote:
            changed.append(item_pk)
        for version, arr in checked.items():
            conn.execute(
                "INSERT INTO vectors (item_pk, model_version, vector, computed_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT(item_pk, model_version) DO UPDATE SET "
                "vector = excluded.vector, computed_at = excluded.computed_at",
                (item_pk, version, codec.vector_out(item.id, version, arr[row_no]), now),
            )
        conn.execute(
            "INSERT INTO lineage (item_pk, run_id, source, line, content_hash, recorded_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (item_pk, run_id, source, None if lines is None else int(lines[row_no]), digest, now),
        )
    _restamp(conn, changed)
    return len(items)


def _restamp(conn: sqlite3.Connection, pks: list[int]) -> None:
    """Stamp the rows just written with the time now, the transaction's last step.

    Readers follow changes by ``updated_at`` and trust that a change stamped more than
    ``search.sync.MARGIN_S`` before they look has committed. A write of many rows in a busy
    server process (its GIL shared with searching threads) took longer than that between its
    first stamp and its commit, and other workers never saw those rows."""
    if not pks:
        return
    stamp = time.time()
    for chunk in _chunks(pks):
        conn.execute(f"UPDATE items SET updated_at = ? WHERE pk IN ({_marks(len(chunk))})",
                     (stamp, *chunk))


def _write_item(
    conn: sqlite3.Connection,
    pk: int,
    codec: RowCodec,
    item: ItemIn,
    digest: str,
    old: tuple | None,
    now: float,
    versions: Mapping[str, np.ndarray],
) -> tuple[int, bool]:
    """Insert or update one item row; returns its pk and whether the row changed."""
    text = codec.text_out(item.id, item.text)
    meta = codec.meta_out(item.id, canonical_metadata(item.metadata, item.id))
    if old is None:
        cur = conn.execute(
            "INSERT INTO items (collection_id, item_id, text, metadata, content_hash, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (pk, item.id, text, meta, digest, now, now),
        )
        return int(cur.lastrowid), True  # type: ignore[arg-type]
    item_pk, old_digest, deleted_at = old
    if old_digest == digest and deleted_at is None:
        return int(item_pk), False
    conn.execute(
        "UPDATE items SET text = ?, metadata = ?, content_hash = ?, updated_at = ?, "
        "deleted_at = NULL WHERE pk = ?",
        (text, meta, digest, now, item_pk),
    )
    # vectors of other versions were computed from the old content: stale now
    keep = list(versions)
    conn.execute(
        f"DELETE FROM vectors WHERE item_pk = ? AND model_version NOT IN ({_marks(len(keep))})",
        (item_pk, *keep),
    )
    return int(item_pk), True


def soft_delete(conn: sqlite3.Connection, pk: int, ids: Sequence[str]) -> int:
    """Mark live items deleted (now) and drop their vectors; returns how many."""
    count = 0
    for chunk in _chunks(list(dict.fromkeys(ids))):
        marks = _marks(len(chunk))
        where = f"collection_id = ? AND item_id IN ({marks}) AND deleted_at IS NULL"
        conn.execute(
            f"DELETE FROM vectors WHERE item_pk IN (SELECT pk FROM items WHERE {where})",
            (pk, *chunk),
        )
        now = time.time()  # as late as can be (see _restamp)
        cur = conn.execute(
            f"UPDATE items SET deleted_at = ?, updated_at = ? WHERE {where}", (now, now, pk, *chunk)
        )
        count += cur.rowcount
    conn.execute("UPDATE collections SET live_count = live_count - ? WHERE id = ?", (count, pk))
    return count


def put_vectors(
    conn: sqlite3.Connection,
    pk: int,
    codec: RowCodec,
    version: str,
    ids: Sequence[str],
    vectors: np.ndarray,
) -> int:
    """Store ``version`` vectors of live items among ``ids``; returns how many."""
    checked = _check_vectors(conn, pk, {version: vectors}, len(ids))[version]
    stored = _existing(conn, pk, ids)
    now, written = time.time(), 0
    for row_no, item_id in enumerate(ids):
        old = stored.get(item_id)
        if old is None or old[2] is not None:
            continue
        conn.execute(
            "INSERT INTO vectors (item_pk, model_version, vector, computed_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(item_pk, model_version) DO UPDATE SET vector = excluded.vector, "
            "computed_at = excluded.computed_at",
            (old[0], version, codec.vector_out(item_id, version, checked[row_no]), now),
        )
        written += 1
    return written


# -- reading -------------------------------------------------------------------------------
_ITEM_COLS = "item_id, text, metadata, content_hash, created_at, updated_at, deleted_at"


def _item(codec: RowCodec, row: Sequence[Any]) -> Item:
    item_id, text, meta, digest, created, updated, deleted_at = row
    return Item(
        item_id, codec.text_in(item_id, text), codec.meta_in(item_id, meta), digest,
        created, updated, deleted_at is not None,
    )


def get(
    conn: sqlite3.Connection, pk: int, codec: RowCodec, ids: Sequence[str], include_deleted: bool
) -> list[Item]:
    """Items by id in the order asked; missing (and deleted unless asked) skipped."""
    found: dict[str, Item] = {}
    live = "" if include_deleted else " AND deleted_at IS NULL"
    for chunk in _chunks(list(dict.fromkeys(ids))):
        rows = conn.execute(
            f"SELECT {_ITEM_COLS} FROM items WHERE collection_id = ? "
            f"AND item_id IN ({_marks(len(chunk))}){live}",
            (pk, *chunk),
        )
        found.update({r[0]: _item(codec, r) for r in rows})
    return [found[i] for i in ids if i in found]


def iterate(
    conn: sqlite3.Connection, pk: int, codec: RowCodec, batch: int, include_deleted: bool
) -> Iterator[Item]:
    """Items in insertion order, ``batch`` rows per query (keyset pagination)."""
    if batch <= 0:
        raise InvalidInput(f"batch must be positive, got {batch}")
    live = "" if include_deleted else " AND deleted_at IS NULL"
    last = -1
    while True:
        rows = conn.execute(
            f"SELECT pk, {_ITEM_COLS} FROM items WHERE collection_id = ? AND pk > ?{live} "
            "ORDER BY pk LIMIT ?",
            (pk, last, batch),
        ).fetchall()
        if not rows:
            return
        last = rows[-1][0]
        for row in rows:
            yield _item(codec, row[1:])


def all_ids(conn: sqlite3.Connection, pk: int, include_deleted: bool) -> list[str]:
    """Every (live) id in insertion order."""
    live = "" if include_deleted else " AND deleted_at IS NULL"
    rows = conn.execute(
        f"SELECT item_id FROM items WHERE collection_id = ?{live} ORDER BY pk", (pk,)
    )
    return [r[0] for r in rows]


def load_vectors(
    conn: sqlite3.Connection, coll: Coll, codec: RowCodec, version: str,
    ids: Sequence[str] | None,
) -> tuple[list[str], np.ndarray]:
    """``(ids, (n, dim) float32)`` of live items with a ``version`` vector."""
    dim = known_dim(conn, coll.pk, version) or 0
    base = (
        "SELECT i.item_id, v.vector FROM items i JOIN vectors v ON v.item_pk = i.pk "
        "WHERE i.collection_id = ? AND i.deleted_at IS NULL AND v.model_version = ?"
    )
    if ids is None:
        return _stream(codec, version, conn.execute(base + " ORDER BY i.pk", (coll.pk, version)),
                       _count_vectors(conn, coll.pk, version), dim)
    else:
        by_id: dict[str, bytes] = {}
        for chunk in _chunks(list(dict.fromkeys(ids))):
            by_id.update(conn.execute(
                base + f" AND i.item_id IN ({_marks(len(chunk))})", (coll.pk, version, *chunk)
            ).fetchall())
        rows = [(i, by_id[i]) for i in ids if i in by_id]
    return [r[0] for r in rows], _stack(codec, version, rows, dim)


def _count_vectors(conn: sqlite3.Connection, pk: int, version: str) -> int:
    """Live items with a ``version`` vector (the size to allocate before streaming them)."""
    return int(conn.execute(
        "SELECT COUNT(*) FROM items i JOIN vectors v ON v.item_pk = i.pk "
        "WHERE i.collection_id = ? AND i.deleted_at IS NULL AND v.model_version = ?",
        (pk, version)).fetchone()[0])


#: rows read from SQLite at a time when every vector of a version is loaded
STREAM_ROWS = 16_384


def _stream(codec: RowCodec, version: str, cursor: sqlite3.Cursor, expected: int, dim: int
            ) -> tuple[list[str], np.ndarray]:
    """``(ids, (n, dim) float32)`` of ``cursor``'s ``(id, blob)`` rows, read ``STREAM_ROWS``
    at a time into one array allocated for ``expected`` rows (grown if writes arrived between
    the count and the read): the rows are never all held as Python objects, so a build of 10M
    vectors needs the matrix and the ids, not ~1 KB a vector more."""
    out = np.empty((expected, dim), dtype=np.float32)
    keys: list[str] = []
    while batch := cursor.fetchmany(STREAM_ROWS):
        end = len(keys) + len(batch)
        if end > len(out):
            out = np.concatenate([out, np.empty((end - len(out) + STREAM_ROWS, dim), np.float32)])
        out[len(keys):end] = _stack(codec, version, batch, dim)
        keys.extend(r[0] for r in batch)
    return keys, out[:len(keys)]


def _stack(codec: RowCodec, version: str, rows: Sequence[Any], dim: int) -> np.ndarray:
    if codec.cipher is None and all(len(r[1]) == 4 * dim for r in rows):
        flat = bytearray(b"".join(r[1] for r in rows))  # one copy, writable
        return np.frombuffer(flat, dtype="<f4").reshape(len(rows), dim)
    out = np.empty((len(rows), dim), dtype=np.float32)
    for n, (item_id, blob) in enumerate(rows):
        out[n] = codec.vector_in(item_id, version, blob, dim)
    return out


def missing_vectors(conn: sqlite3.Connection, pk: int, version: str) -> list[str]:
    """Live ids without a ``version`` vector, in insertion order."""
    rows = conn.execute(
        "SELECT i.item_id FROM items i LEFT JOIN vectors v "
        "ON v.item_pk = i.pk AND v.model_version = ? "
        "WHERE i.collection_id = ? AND i.deleted_at IS NULL AND v.item_pk IS NULL ORDER BY i.pk",
        (version, pk),
    )
    return [r[0] for r in rows]


def changes_since(conn: sqlite3.Connection, pk: int, ts: float) -> list[tuple[str, float, bool]]:
    """``(id, updated_at, deleted)`` written after ``ts``, oldest first."""
    rows = conn.execute(
        "SELECT item_id, updated_at, deleted_at IS NOT NULL FROM items "
        "WHERE collection_id = ? AND updated_at > ? ORDER BY updated_at, pk",
        (pk, ts),
    )
    return [(r[0], float(r[1]), bool(r[2])) for r in rows]


def stats(conn: sqlite3.Connection, pk: int, codec: RowCodec | None) -> dict[str, Any]:
    """Deleted count, vectors per version and the last ingest runs of a collection."""
    deleted = conn.execute(
        "SELECT COUNT(*) FROM items WHERE collection_id = ? AND deleted_at IS NOT NULL", (pk,)
    ).fetchone()[0]
    per_version = dict(conn.execute(
        "SELECT v.model_version, COUNT(*) FROM vectors v JOIN items i ON i.pk = v.item_pk "
        "WHERE i.collection_id = ? AND i.deleted_at IS NULL GROUP BY v.model_version", (pk,)
    ).fetchall())
    runs = [
        {"run_id": r[0], "source": r[1], "started_at": r[2], "finished_at": r[3],
         "report": _report(codec, r[0], r[4])}
        for r in conn.execute(
            "SELECT run_id, source, started_at, finished_at, report FROM ingest_runs "
            "WHERE collection_id = ? ORDER BY started_at DESC LIMIT 5", (pk,)
        )
    ]
    return {"deleted_count": int(deleted), "vectors": per_version, "ingest_runs": runs}


def _report(codec: RowCodec | None, run_id: str, stored: str | bytes | None) -> Any:
    if stored is None:
        return None
    if codec is None:
        return {"encrypted": True}
    return codec.meta_in(f"run:{run_id}", stored)
