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
