"""Snapshot integrity beyond the data files (issue 21, items 2, 4 and 5): a sealed
``manifest.json`` (any edit is detected) and a ``CURRENT`` pointer that is only ever a snapshot
name, never a path, and whose corruption is logged and survived, never a traceback."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from embedops.errors import IntegrityError, Unavailable
from embedops.index import make_index
from embedops.index.snapshot import CURRENT, MANIFEST, QUARANTINE, SnapshotStore, snapshot_root
from index_testing import one_faiss_thread  # noqa: F401 (autouse fixture)

DIM = 8
META = {"collection": "docs", "model_version": "minilm@2", "catalog_ts": 100.0}


def index_of(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    index = make_index("flat", DIM, "cosine")
    index.build(rng.standard_normal((n, DIM)).astype(np.float32), np.arange(n))
    return index


def keys(n: int) -> list[str]:
    return [f"item-{i}" for i in range(n)]


@pytest.fixture
def store(tmp_path: Path) -> SnapshotStore:
    return SnapshotStore(snapshot_root(tmp_path / "ws" / "indexes", "docs", "minilm@2"), keep=5)


def two(store: SnapshotStore) -> tuple[Any, Any]:
    """Publish a good older snapshot (20 items) and a newer current one (30 items)."""
    return (store.publish(index_of(20), keys(20), META),
            store.publish(index_of(30, seed=1), keys(30), META))


def edit_json(path: Path, change: Callable[[dict], None]) -> None:
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


# --- the manifest is sealed -----------------------------------------------------------------
VALID_JSON_EDITS: dict[str, Callable[[dict], None]] = {
    "raise meta.catalog_ts": lambda m: m["meta"].__setitem__("catalog_ts", 1e12),
    "drop meta.catalog_ts": lambda m: m["meta"].pop("catalog_ts"),
    "item_count": lambda m: m.__setitem__("item_count", 3),
    "backend": lambda m: m.__setitem__("backend", "hnsw"),
    "dim": lambda m: m.__setitem__("dim", 4),
    "metric": lambda m: m.__setitem__("metric", "l2"),
    "collection": lambda m: m.__setitem__("collection", "other"),
    "model_version": lambda m: m.__setitem__("model_version", "minilm@1"),
    "add a key": lambda m: m.__setitem__("note", "x"),
    "drop a file checksum": lambda m: m["files"].pop("keys.json"),
    "remove the seal": lambda m: m.pop("seal"),
    "seal of another body": lambda m: m.__setitem__("seal", "sha256:" + "0" * 64),
    "old format without seal": lambda m: (m.pop("seal"), m.__setitem__("format", 1)),
    "reformat only": lambda m: None,
}


@pytest.mark.parametrize("edit", sorted(VALID_JSON_EDITS))
def test_every_valid_json_edit_of_the_manifest_fails_verify(store: SnapshotStore, edit: str):
    good, bad = two(store)
    edit_json(bad.path / MANIFEST, VALID_JSON_EDITS[edit])
    if edit == "reformat only":  # same content, other layout: still not what was written
        (bad.path / MANIFEST).write_text(json.dumps(json.loads(
            (bad.path / MANIFEST).read_text())))
    checks = {c.name: c for c in store.verify()}
    assert checks[good.name].ok
    assert not checks[bad.name].ok and "seal" in " ".join(checks[bad.name].problems)
    loaded = store.load_current()
    assert loaded.info.name == good.name and loaded.index.count == 20
    assert (store.root / QUARANTINE / bad.name).is_dir()
    assert store.current().name == good.name


def test_an_edited_manifest_is_not_shown_as_current(store: SnapshotStore):
    _, bad = two(store)
    edit_json(bad.path / MANIFEST, VALID_JSON_EDITS["raise meta.catalog_ts"])
    with pytest.raises(IntegrityError, match="seal"):
        store.current()
    assert [s.name for s in store.list()] != [] and bad.name not in [s.name for s in store.list()]


def test_a_legacy_unsealed_snapshot_is_readable_but_never_served(store: SnapshotStore):
    only = store.publish(index_of(20), keys(20), META)
    edit_json(only.path / MANIFEST, VALID_JSON_EDITS["old format without seal"])
    assert store.current().backend == "flat"  # a rebuild keeps the backend and params
    assert not store.verify()[0].ok
    with pytest.raises(Unavailable, match="rebuild"):
        store.load_current()


def test_the_manifest_records_a_seal_and_format_2(store: SnapshotStore):
    info = store.publish(index_of(5), keys(5), META)
    manifest = json.loads((info.path / MANIFEST).read_text())
    assert manifest["format"] == 2 and manifest["seal"].startswith("sha256:")
    assert store.verify()[0].ok


# --- CURRENT holds a name, never a path ------------------------------------------------------
def victim(tmp_path: Path) -> Path:
    """A folder outside the snapshot root that a hostile pointer aims at."""
    folder = tmp_path / "victim"
    folder.mkdir(exist_ok=True)
    (folder / "precious.txt").write_text("keep me")
    return folder


def pointers(tmp_path: Path, store: SnapshotStore) -> dict[str, bytes]:
    outside = victim(tmp_path)
    rel = os.path.relpath(outside, store.root).encode()
    return {
        "absolute path": str(outside).encode() + b"\n",
        "relative ../ path": rel + b"\n",
        "name plus ../": b"../" + store.root.name.encode() + b"\n",
        "non-UTF-8 bytes": b"\xff\xfe\x00garbage\x80\n",
        "empty": b"",
        "whitespace": b" \n\n",
        "quarantine": QUARANTINE.encode() + b"\n",
        "dot": b".\n",
        "near name": b"20240101T000000000000Z-zzzzzz\n",
        "huge": b"2" * 100_000,
    }


POINTER_CASES = [
    "absolute path", "relative ../ path", "name plus ../", "non-UTF-8 bytes", "empty",
    "whitespace", "quarantine", "dot", "near name", "huge",
]


@pytest.mark.parametrize("case", POINTER_CASES)
def test_a_bad_pointer_serves_the_newest_good_snapshot_and_touches_nothing_outside(
    store: SnapshotStore, tmp_path: Path, case: str, caplog: pytest.LogCaptureFixture
):
    _, newest = two(store)
    (store.root / CURRENT).write_bytes(pointers(tmp_path, store)[case])
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")
                    if store.root not in p.parents and p != store.root)
    with caplog.at_level(logging.WARNING, logger="embedops.index.snapshot"):
        assert store.current() is None
        assert [s.name for s in store.list()]  # no traceback
        checks = store.verify()
        assert checks[0].name == CURRENT and not checks[0].ok
        assert store.verify(all=False)[0].name == CURRENT
        loaded = store.load_current()
    assert loaded.info.name == newest.name and loaded.index.count == 30
    assert (store.root / CURRENT).read_text().strip() == newest.name  # repointed
    assert any("pointer" in r.getMessage() for r in caplog.records)
    assert all("garbage" not in r.getMessage() for r in caplog.records)
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")
                   if store.root not in p.parents and p != store.root)
    assert after == before and (tmp_path / "victim" / "precious.txt").read_text() == "keep me"
    assert not (store.root / QUARANTINE).exists()  # the good snapshots were not quarantined


@pytest.mark.parametrize("case", ["absolute path", "relative ../ path", "non-UTF-8 bytes"])
def test_rollback_with_a_bad_pointer_does_not_traceback(
    store: SnapshotStore, tmp_path: Path, case: str
):
    _, newest = two(store)
    (store.root / CURRENT).write_bytes(pointers(tmp_path, store)[case])
    assert store.rollback().name == newest.name  # repaired: points at the newest good one
    assert store.current().name == newest.name


def test_a_bad_pointer_with_nothing_good_left_is_unavailable(store: SnapshotStore):
    only = store.publish(index_of(5), keys(5), META)
    (only.path / "keys.json").write_bytes(b"[]")
    (store.root / CURRENT).write_bytes(b"\xff\xff")
    with pytest.raises(Unavailable, match="rebuild"):
        store.load_current()


def test_a_pointer_that_is_a_folder_or_a_link_is_corruption(store: SnapshotStore, tmp_path: Path):
    _, newest = two(store)
    (store.root / CURRENT).unlink()
    (store.root / CURRENT).mkdir()
    assert store.current() is None and store.load_current().info.name == newest.name
    outside = victim(tmp_path) / "pointer"
    outside.write_text(newest.name)
    (store.root / CURRENT).unlink()
    (store.root / CURRENT).symlink_to(outside)
    assert store.current() is None
    assert store.load_current().info.name == newest.name
    assert outside.read_text() == newest.name and not (store.root / CURRENT).is_symlink()


def test_a_missing_pointer_with_snapshots_serves_the_newest_good_one(store: SnapshotStore):
    _, newest = two(store)
    (store.root / CURRENT).unlink()
    assert store.load_current().info.name == newest.name
    assert (store.root / CURRENT).read_text().strip() == newest.name


def test_a_pointer_to_a_missing_snapshot_is_reported_by_verify(store: SnapshotStore):
    first, newest = two(store)
    (store.root / CURRENT).write_text("29991231T235959999999Z-abcdef\n")
    assert [c.name for c in store.verify() if not c.ok] == [CURRENT]
    assert store.load_current().info.name == newest.name


def test_only_snapshot_named_plain_folders_are_snapshots(store: SnapshotStore, tmp_path: Path):
    good, _ = two(store)
    (store.root / "notes").mkdir()
    outside = victim(tmp_path)
    (store.root / "29991231T235959999999Z-abcdef").symlink_to(outside, target_is_directory=True)
    assert "notes" not in [s.name for s in store.list()]
    assert len(store.list()) == 2 and len(store.verify()) == 2
    (store.root / CURRENT).write_text("29991231T235959999999Z-abcdef\n")  # names the link
    loaded = store.load_current()
    assert loaded.index.count in (20, 30) and (outside / "precious.txt").exists()
    assert not (outside / "QUARANTINE-REASON.json").exists()
    assert good.path.is_dir()
