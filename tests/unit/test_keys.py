"""API keys: salted hashes at rest, roles, revocation across processes, and the audit trail."""

from __future__ import annotations

import sqlite3

import pytest

from embedops.cli.main import main
from embedops.config import Workspace
from embedops.engine import audit
from embedops.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from embedops.serve.keys import KeyStore, Role


def test_created_key_verifies_with_its_role(workspace: Workspace) -> None:
    store = KeyStore(workspace)
    key, info = store.create("write", "ingest-bot")
    assert key.startswith(f"eok_{info.id}_")
    principal = store.verify(key)
    assert principal.key_id == info.id and principal.role is Role.write
    # the second verification takes the remembered path and must agree
    assert store.verify(key) == principal


def test_only_a_salted_hash_is_stored(workspace: Workspace) -> None:
    store = KeyStore(workspace)
    key_a, _ = store.create("read")
    key_b, _ = store.create("read")
    raw = (workspace.keys_db_path).read_bytes()
    secret_a = key_a.rsplit("_", 1)[1]
    assert secret_a.encode() not in raw and key_a.encode() not in raw
    rows = sqlite3.connect(workspace.keys_db_path).execute("SELECT salt, hash FROM api_keys")
    salts, hashes = zip(*rows, strict=True)
    assert len(set(salts)) == 2 and len(set(hashes)) == 2
    assert key_b != key_a


@pytest.mark.parametrize(
    "bad",
    ["", "nonsense", "eok_zzzzzzzzzzzz_" + "a" * 43, "Bearer eok_", "eok_0123456789ab_short"],
)
def test_malformed_or_unknown_keys_are_401(workspace: Workspace, bad: str) -> None:
    with pytest.raises(Unauthorized) as err:
        KeyStore(workspace).verify(bad)
    assert err.value.http_status == 401


def test_wrong_secret_for_a_real_id_is_401(workspace: Workspace) -> None:
    store = KeyStore(workspace)
    key, info = store.create("admin")
    store.verify(key)  # remembered; a forged secret must still be checked
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    with pytest.raises(Unauthorized, match="wrong"):
        store.verify(forged)


def test_revocation_applies_to_a_running_store(workspace: Workspace) -> None:
    serving = KeyStore(workspace)
    key, info = serving.create("read")
    serving.verify(key)
    KeyStore(workspace).revoke(info.id)  # as 'embedops keys revoke' in another process
    with pytest.raises(Unauthorized, match="revoked"):
        serving.verify(key)
    assert not serving.list()[0].active


def test_roles_are_ordered() -> None:
    from embedops.serve.keys import Principal

    Principal("k", Role.admin).require(Role.write)
    with pytest.raises(Forbidden, match="needs 'write'") as err:
        Principal("k", Role.read).require(Role.write)
    assert err.value.http_status == 403


def test_bad_role_name_and_unknown_id(workspace: Workspace) -> None:
    store = KeyStore(workspace)
    with pytest.raises(InvalidInput, match="unknown role"):
        store.create("root")
    with pytest.raises(InvalidInput, match="invalid key name"):
        store.create("read", "x" * 65)
    with pytest.raises(NotFound, match="no API key"):
        store.revoke("000000000000")


def test_cli_create_list_revoke_writes_audit(
    workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "create", "--role", "admin", "--name", "ops"]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("eok_")
    key_id = key.split("_")[1]
    assert main(["keys", "list"]) == 0
    listing = capsys.readouterr().out
    assert key_id in listing and "admin" in listing and key not in listing
    assert main(["keys", "revoke", key_id]) == 0
    assert main(["keys", "revoke", "ffffffffffff"]) == 1
    entries = audit.read(workspace)
    assert [e["action"] for e in entries] == ["key.create", "key.revoke"]
    assert all(e["key_id"] == key_id and key not in str(e) for e in entries)
    assert main(["keys", "create", "--role", "god"]) == 1


def test_scoped_key_sees_its_collections_and_prefixes(workspace: Workspace) -> None:
    store = KeyStore(workspace)
    key, info = store.create("write", "acme", collections=["shared"], prefixes=["acme-"])
    who = store.verify(key)
    assert who.scoped and info.scoped
    assert who.may_see("shared") and who.may_see("acme-docs")
    assert not who.may_see("other") and not who.may_see("acme")
    hidden = who.hidden("other")
    assert hidden.http_status == 404 and "known" not in str(hidden)
    with pytest.raises(Forbidden):
        who.require_scope("other")
    plain = store.verify(store.create("read")[0])
    assert not plain.scoped and plain.may_see("anything")


def test_old_keys_db_is_migrated_in_place(workspace: Workspace) -> None:
    workspace.ensure()
    conn = sqlite3.connect(workspace.keys_db_path)
    conn.execute("CREATE TABLE api_keys (id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT "
                 "NOT NULL, salt BLOB NOT NULL, hash BLOB NOT NULL, created_at REAL NOT NULL, "
                 "revoked_at REAL)")
    conn.execute("INSERT INTO api_keys VALUES ('aaaaaaaaaaaa', 'old', 'read', x'00', x'00', 1, "
                 "NULL)")
    conn.commit()
    conn.close()
    store = KeyStore(workspace)
    old = store.get("aaaaaaaaaaaa")
    assert old.name == "old" and not old.scoped and old.expires_at is None
    key, _ = store.create("read", collections=["c"])
    assert store.verify(key).collections == frozenset({"c"})
    KeyStore(workspace)  # idempotent


def test_expiry_and_rotation_with_overlap(workspace: Workspace) -> None:
    import time

    store = KeyStore(workspace)
    with pytest.raises(InvalidInput, match="past"):
        store.create("read", expires_at=time.time() - 1)
    key, info = store.create("read", prefixes=["t1-"], tokens_per_day=100)
    new_key, new, old = store.rotate(info.id, overlap_s=0.3)
    assert new.prefixes == ["t1-"] and new.tokens_per_day == 100 and new.name == info.name
    assert store.verify(key).key_id == info.id  # still valid during the overlap
    assert store.verify(new_key).key_id == new.id
    time.sleep(0.4)
    with pytest.raises(Unauthorized, match="expired"):
        store.verify(key)
    assert store.verify(new_key).key_id == new.id
    assert not store.get(info.id).active and store.get(new.id).active


def test_last_used_is_recorded(workspace: Workspace) -> None:
    store = KeyStore(workspace)
    key, info = store.create("read")
    assert store.get(info.id).last_used_at is None
    store.verify(key)
    assert store.get(info.id).last_used_at is not None


def test_cached_rows_see_another_process_revocation(workspace: Workspace) -> None:
    serving = KeyStore(workspace)
    key, info = serving.create("read", collections=["c"])
    for _ in range(3):
        serving.verify(key)  # served from the row cache now
    other = sqlite3.connect(workspace.keys_db_path)
    other.execute("UPDATE api_keys SET revoked_at = 1 WHERE id = ?", (info.id,))
    other.commit()
    with pytest.raises(Unauthorized, match="revoked"):
        serving.verify(key)


def test_cli_creates_scoped_expiring_keys_and_rotates(workspace: Workspace,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from embedops.cli.serve_cmd import parse_duration

    assert parse_duration("30d") == 30 * 86400 and parse_duration("90") == 90
    assert main(["keys", "create", "--role", "read", "--collection", "a", "--prefix", "t-",
                 "--expires", "30d"]) in (0, None)
    rows = KeyStore(workspace).list()
    assert rows[-1].collections == ["a"] and rows[-1].prefixes == ["t-"]
    assert rows[-1].expires_at is not None
    assert main(["keys", "rotate", rows[-1].id, "--overlap", "1h"]) in (0, None)
    assert len(KeyStore(workspace).list()) == len(rows) + 1
    assert main(["keys", "list"]) in (0, None)
    assert "scope=a,t-*" in capsys.readouterr().out
