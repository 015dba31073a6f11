"""Encryption at rest: nothing of an encrypted collection is stored in plain; a wrong or missing
key is a clear error that never shows the key."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import numpy as np
import pytest

from embedops.config import Workspace
from embedops.errors import EncryptionKeyError, InvalidInput
from embedops.store import Catalog, ItemIn
from embedops.store.crypto import KEY_ENV, KEY_FILE_ENV, Cipher, generate_key, load_key

SECRETS = [
    "Zanzibar marmalade conspiracy alpha",
    "Quixotic hedgehog ledger seventeen",
    "Ultraviolet pomegranate treaty",
]


def _key() -> bytes:
    return base64.b64decode(generate_key())


def _needles(key: bytes, vecs: np.ndarray) -> list[bytes]:
    out = [s.encode() for s in SECRETS] + [b"Bartholomew", b"marmalade", b"owner"]
    out += [hashlib.sha256(s.encode()).hexdigest().encode() for s in SECRETS]
    return out + [vecs[0].tobytes(), key, base64.b64encode(key)]


def _assert_no_plain(ws: Workspace, needles: list[bytes]) -> list[str]:
    files = [p for p in ws.home.rglob("*") if p.is_file()]
    for path in files:
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, f"{needle[:20]!r} found in plain in {path.name}"
    return sorted(p.name for p in files)


def _write_secret_collection(ws: Workspace, key: bytes) -> np.ndarray:
    cat = Catalog(ws, key=key)
    cat.create_collection("vault", "m@1", dim=3, encrypted=True)
    items = [ItemIn(f"doc-{i}", text, {"owner": f"Bartholomew{i}Smithers"})
             for i, text in enumerate(SECRETS)]
    vecs = np.arange(9, dtype=np.float32).reshape(3, 3) + 0.123
    cat.start_run("vault", "r", "in.jsonl")
    cat.upsert("vault", items, {"m@1": vecs}, run_id="r", source="in.jsonl", lines=[1, 2, 3])
    cat.finish_run("vault", "r", {"failed_lines": [[4, "no 'id' field (fields: Bartholomew)"]]})
    cat.delete("vault", ["doc-2"])
    # before the checkpoint the pages sit in the write-ahead log
    assert "catalog.db-wal" in _assert_no_plain(ws, _needles(key, vecs))
    cat.checkpoint()
    cat.close()
    return vecs


def test_no_plain_text_in_any_workspace_file(workspace: Workspace) -> None:
    key = _key()
    vecs = _write_secret_collection(workspace, key)
    assert "catalog.db" in _assert_no_plain(workspace, _needles(key, vecs))
    # and it still reads back with the key
    cat = Catalog(workspace, key=key)
    got = cat.get_items("vault", ["doc-1", "doc-0"])
    assert [it.text for it in got] == [SECRETS[1], SECRETS[0]]
    assert got[1].metadata == {"owner": "Bartholomew0Smithers"}
    np.testing.assert_array_equal(cat.load_vectors("vault", "m@1")[1], vecs[:2])
    same = ItemIn("doc-0", SECRETS[0], {"owner": "Bartholomew0Smithers"})
    assert cat.plan_upsert("vault", [same]) == []
    cat.close()


def test_wrong_key_is_refused_without_showing_keys(workspace: Workspace) -> None:
    key, other = _key(), _key()
    _write_secret_collection(workspace, key)
    cat = Catalog(workspace, key=other)
    with pytest.raises(EncryptionKeyError, match="key id") as info:
        cat.get_items("vault", ["doc-0"])
    text = str(info.value)
    for secret in (key, other):
        assert base64.b64encode(secret).decode() not in text and secret.hex() not in text
    assert cat.list_collections()[0].encrypted  # listing needs no key
    cat.close()
    with Catalog(workspace) as keyless:
        stats = keyless.stats("vault")
    assert stats["item_count"] == 2 and stats["ingest_runs"][0]["report"] == {"encrypted": True}
    with Catalog(workspace, key=key) as right:
        report = right.stats("vault")["ingest_runs"][0]["report"]
    assert report["failed_lines"][0][0] == 4


def test_tampered_ciphertext_fails_authentication(workspace: Workspace) -> None:
    import sqlite3

    key = _key()
    _write_secret_collection(workspace, key)
    conn = sqlite3.connect(workspace.catalog_path)
    # swap the texts of two rows: each ciphertext is bound to its own item id
    rows = conn.execute("SELECT pk, text FROM items ORDER BY pk LIMIT 2").fetchall()
    conn.execute("UPDATE items SET text = ? WHERE pk = ?", (rows[1][1], rows[0][0]))
    conn.commit()
    conn.close()
    with Catalog(workspace, key=key) as cat, pytest.raises(EncryptionKeyError, match="altered"):
        cat.get_items("vault", ["doc-0"])


def test_missing_key_is_a_clear_error(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    cat = Catalog(workspace)
    with pytest.raises(EncryptionKeyError, match=KEY_ENV):
        cat.create_collection("vault", "m@1", dim=3, encrypted=True)
    with pytest.raises(EncryptionKeyError):
        cat.set_encrypt_by_default(True)
    cat.close()


def test_key_from_env_and_file(workspace: Workspace, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    key = _key()
    assert load_key({KEY_ENV: base64.b64encode(key).decode()}) == key
    assert load_key({KEY_ENV: base64.urlsafe_b64encode(key).decode()}) == key
    keyfile = tmp_path / "k"
    keyfile.write_text(base64.b64encode(key).decode() + "\n")
    assert load_key({KEY_FILE_ENV: str(keyfile)}) == key
    keyfile.write_bytes(key)
    assert load_key({KEY_FILE_ENV: str(keyfile)}) == key
    assert load_key({}) is None
    bad = "c2hvcnQ="  # base64 of b"short"
    with pytest.raises(EncryptionKeyError, match="decodes to 5 bytes") as info:
        load_key({KEY_ENV: bad})
    assert bad not in str(info.value)
    with pytest.raises(EncryptionKeyError, match="cannot read"):
        load_key({KEY_FILE_ENV: str(tmp_path / "absent")})
    # the catalog picks the key up from the environment, and workspace-wide encryption works
    monkeypatch.setenv(KEY_ENV, base64.b64encode(key).decode())
    with Catalog(workspace) as cat:
        cat.set_encrypt_by_default(True)
        assert cat.create_collection("auto", "m@1", dim=2).encrypted
        assert not cat.create_collection("plain", "m@1", dim=2, encrypted=False).encrypted


def test_cipher_hashes_do_not_leak_and_nonces_differ() -> None:
    cipher = Cipher(_key())
    assert cipher.encrypt(b"same", b"aad") != cipher.encrypt(b"same", b"aad")
    blob = cipher.encrypt(b"hello", b"aad")
    assert len(blob) == Cipher.ciphertext_len(5) and cipher.decrypt(blob, b"aad") == b"hello"
    with pytest.raises(EncryptionKeyError):
        cipher.decrypt(blob, b"other aad")
    assert "key_id" in repr(cipher)


def test_the_scan_does_find_plain_collections(workspace: Workspace) -> None:
    """The leak check above can fail: the same data in a plain collection is found."""
    with Catalog(workspace) as cat:
        cat.create_collection("open", "m@1", dim=3)
        cat.upsert("open", [ItemIn("d", SECRETS[0], {"owner": "Bartholomew"})],
                   {"m@1": np.ones((1, 3), np.float32)})
        with pytest.raises(AssertionError, match="found in plain"):
            _assert_no_plain(workspace, [SECRETS[0].encode()])


def test_rekey_moves_every_row_to_the_new_key(workspace: Workspace) -> None:
    import sqlite3

    key, new = _key(), _key()
    vecs = _write_secret_collection(workspace, key)
    conn = sqlite3.connect(workspace.catalog_path)
    old_blob = conn.execute("SELECT text FROM items ORDER BY pk LIMIT 1").fetchone()[0]
    conn.close()
    with Catalog(workspace, key=key) as cat:
        old_hash = cat.get_items("vault", ["doc-0"])[0].content_sha256
        cat.create_collection("plain", "m@1", dim=3, encrypted=False)
        with pytest.raises(InvalidInput, match="not encrypted"):
            cat.rekey("plain", new)
        cat.rekey("vault", new)
        item = cat.get_items("vault", ["doc-0"])[0]
        assert item.text == SECRETS[0] and item.content_sha256 != old_hash
        assert cat.plan_upsert("vault", [ItemIn("doc-0", SECRETS[0], item.metadata)]) == []
        np.testing.assert_array_equal(cat.load_vectors("vault", "m@1")[1], vecs[:2])
        assert cat.stats("vault")["ingest_runs"][0]["report"]["failed_lines"][0][0] == 4
    with Catalog(workspace, key=key) as stale, pytest.raises(EncryptionKeyError, match="key id"):
        stale.get_items("vault", ["doc-0"])
    assert "catalog.db" in _assert_no_plain(workspace, _needles(new, vecs) + [old_blob])
