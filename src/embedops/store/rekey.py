"""Key rotation of an encrypted collection: every text, metadata object, vector and ingest
report is decrypted with the old key and encrypted with the new one, and content hashes are
recomputed under the new HMAC key, in one transaction (all rows move, or none).

Lineage rows keep the hash of the content they recorded; those made under the old key cannot be
recomputed (the old content is gone) and are marked ``rekeyed``.
"""

from __future__ import annotations

import sqlite3

from embedops.errors import InvalidInput
from embedops.store.codec import RowCodec
from embedops.store.crypto import Cipher
from embedops.store.models import CollectionInfo, ItemIn, canonical_metadata


def rekey_collection(
    conn: sqlite3.Connection, pk: int, info: CollectionInfo, old: RowCodec, new_cipher: Cipher
) -> int:
    """Move collection ``info`` (primary key ``pk``) from ``old`` to ``new_cipher`` inside the
    caller's transaction; returns the number of items re-encrypted."""
    if not info.encrypted:
        raise InvalidInput(f"collection {info.name!r} is not encrypted", "nothing to rekey")
    conn.execute("PRAGMA secure_delete = ON")  # zero old ciphertext in freed pages
    count = rekey_rows(conn, pk, old, RowCodec(info.name, new_cipher))
    conn.execute("UPDATE collections SET key_id = ? WHERE id = ?", (new_cipher.key_id, pk))
    return count


def rekey_rows(conn: sqlite3.Connection, pk: int, old: RowCodec, new: RowCodec) -> int:
    """Re-encrypt one collection's rows from ``old`` to ``new`` (inside the caller's
    transaction); returns the number of items re-encrypted."""
    rows = conn.execute(
        "SELECT pk, item_id, text, metadata, content_hash FROM items WHERE collection_id = ?",
        (pk,),
    ).fetchall()
    for item_pk, item_id, text, meta, old_hash in rows:
        item = ItemIn(item_id, old.text_in(item_id, text), old.meta_in(item_id, meta))
        new_hash = new.hash(item)
        conn.execute(
            "UPDATE items SET text = ?, metadata = ?, content_hash = ? WHERE pk = ?",
            (new.text_out(item_id, item.text),
             new.meta_out(item_id, canonical_metadata(item.metadata, item_id)), new_hash, item_pk),
        )
        conn.execute(
            "UPDATE lineage SET content_hash = CASE WHEN content_hash = ? THEN ? ELSE 'rekeyed' "
            "END WHERE item_pk = ?",
            (old_hash, new_hash, item_pk),
        )
        _rekey_vectors(conn, item_pk, item_id, old, new)
    _rekey_reports(conn, pk, old, new)
    return len(rows)


def _rekey_vectors(
    conn: sqlite3.Connection, item_pk: int, item_id: str, old: RowCodec, new: RowCodec
) -> None:
    rows = conn.execute(
        "SELECT v.model_version, v.vector, cv.dim FROM vectors v JOIN items i ON i.pk = v.item_pk "
        "JOIN collection_versions cv ON cv.collection_id = i.collection_id "
        "AND cv.model_version = v.model_version WHERE v.item_pk = ?",
        (item_pk,),
    ).fetchall()
    for version, blob, dim in rows:
        vector = old.vector_in(item_id, version, blob, int(dim))
        conn.execute(
            "UPDATE vectors SET vector = ? WHERE item_pk = ? AND model_version = ?",
            (new.vector_out(item_id, version, vector), item_pk, version),
        )


def _rekey_reports(conn: sqlite3.Connection, pk: int, old: RowCodec, new: RowCodec) -> None:
    rows = conn.execute(
        "SELECT run_id, report FROM ingest_runs WHERE collection_id = ? AND report IS NOT NULL",
        (pk,),
    ).fetchall()
    for run_id, stored in rows:
        report = old.meta_in(f"run:{run_id}", stored)
        conn.execute(
            "UPDATE ingest_runs SET report = ? WHERE run_id = ?",
            (new.meta_out(f"run:{run_id}", canonical_metadata(report)), run_id),
        )
