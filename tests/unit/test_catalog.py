"""Catalog: collections, idempotent upserts, soft deletes, vectors per model version, lineage,
migrations, and thread use, on a real SQLite file."""

from __future__ import annotations

import sqlite3
import threading

import numpy as np
import pytest

from embedops.config import Workspace
from embedops.errors import (
    AlreadyExists,
    CollectionNotFound,
    DimensionMismatch,
    IntegrityError,
    InvalidInput,
    ModelNotFound,
)
from embedops.store import Catalog, ItemIn
from embedops.store.schema import LATEST

DIM = 4


@pytest.fixture
def catalog(workspace: Workspace) -> Catalog:
    cat = Catalog(workspace)
    cat.create_collection("docs", "m@1", dim=DIM)
    yield cat
    cat.close()


def _items(n: int, prefix: str = "text") -> list[ItemIn]:
    return [ItemIn(f"id{i}", f"{prefix} number {i}", {"n": i, "tag": "a" if i % 2 else "b"})
            for i in range(n)]


def _vecs(n: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def test_collections_create_list_get_delete(catalog: Catalog) -> None:
    info = catalog.get_collection("docs")
    assert (info.model_version, info.metric, info.dim, info.encrypted, info.item_count) == (
        "m@1", "cosine", DIM, False, 0)
    catalog.create_collection("b-two", "m@1", metric="l2", dim=DIM)
    assert [c.name for c in catalog.list_collections()] == ["b-two", "docs"]
    with pytest.raises(AlreadyExists):
        catalog.create_collection("docs", "m@1", dim=DIM)
    catalog.delete_collection("b-two")
    with pytest.raises(CollectionNotFound, match="known collections: docs"):
        catalog.get_collection("b-two")
    assert type(info)(**info.to_dict()) == info


@pytest.mark.parametrize(
    "kwargs",
    [{"name": "bad name"}, {"name": "../x"}, {"name": ""}, {"metric": "dot"}, {"dim": 0},
     {"model_version": ""}],
)
def test_create_collection_refuses_bad_input(catalog: Catalog, kwargs: dict) -> None:
    args = {"name": "ok", "model_version": "m@1", "metric": "cosine", "dim": DIM, **kwargs}
    with pytest.raises(InvalidInput):
        catalog.create_collection(**args)


def test_upsert_is_idempotent_and_detects_changes(catalog: Catalog) -> None:
    items = _items(5)
    assert catalog.plan_upsert("docs", items) == items
    written = catalog.upsert("docs", items, {"m@1": _vecs(5)}, run_id="r1", source="f",
                             lines=[1, 2, 3, 4, 5])
    assert written == 5
    assert catalog.plan_upsert("docs", items) == []
    changed = [ItemIn("id1", "text number 1", {"n": 1, "tag": "CHANGED"}), items[2],
               ItemIn("new", "brand new")]
    assert [it.id for it in catalog.plan_upsert("docs", changed)] == ["id1", "new"]
    # metadata key order does not change the hash
    reordered = ItemIn("id3", "text number 3", {"tag": "a", "n": 3})
    assert catalog.plan_upsert("docs", [reordered]) == []
    assert catalog.get_collection("docs").item_count == 5


def test_get_items_keeps_order_and_skips_missing(catalog: Catalog) -> None:
    catalog.upsert("docs", _items(4), {"m@1": _vecs(4)})
    got = catalog.get_items("docs", ["id3", "nope", "id0"])
    assert [it.id for it in got] == ["id3", "id0"]
    assert got[0].text == "text number 3" and got[0].metadata == {"n": 3, "tag": "a"}
    assert len(got[0].content_sha256) == 64 and not got[0].deleted
    assert [it.id for it in catalog.iter_items("docs", batch=3)] == ["id0", "id1", "id2", "id3"]


def test_vectors_roundtrip_and_order(catalog: Catalog) -> None:
    vecs = _vecs(6, seed=1)
    catalog.upsert("docs", _items(6), {"m@1": vecs})
    ids, got = catalog.load_vectors("docs", "m@1")
    assert ids == [f"id{i}" for i in range(6)] and got.dtype == np.float32
    np.testing.assert_array_equal(got, vecs)
    ids, got = catalog.load_vectors("docs", "m@1", ["id4", "ghost", "id1"])
    assert ids == ["id4", "id1"]
    np.testing.assert_array_equal(got, vecs[[4, 1]])


def test_all_vectors_are_streamed_in_batches_and_rows_after_the_count_kept(
        catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    from embedops.store import items

    vecs = _vecs(11, seed=2)
    catalog.upsert("docs", _items(11), {"m@1": vecs})
    catalog.delete("docs", ["id5"])
    monkeypatch.setattr(items, "STREAM_ROWS", 3)  # 4 batches
    ids, got = catalog.load_vectors("docs", "m@1")
    live = [i for i in range(11) if i != 5]
    assert ids == [f"id{i}" for i in live] and got.shape == (10, DIM)
    np.testing.assert_array_equal(got, vecs[live])
    # writes that land between the count and the read: the array grows, nothing is dropped
    monkeypatch.setattr(items, "_count_vectors", lambda *_: 4)
    ids, got = catalog.load_vectors("docs", "m@1")
    assert ids == [f"id{i}" for i in live]
    np.testing.assert_array_equal(got, vecs[live])
    monkeypatch.setattr(items, "_count_vectors", lambda *_: 40)  # deletes: fewer than counted
    assert catalog.load_vectors("docs", "m@1")[1].shape == (10, DIM)


def test_soft_delete_then_changes_since(catalog: Catalog) -> None:
    catalog.upsert("docs", _items(3), {"m@1": _vecs(3)})
    mark = max(ts for _, ts, _ in catalog.changes_since("docs", 0.0))
    assert catalog.delete("docs", ["id1", "ghost"]) == 1
    assert catalog.delete("docs", ["id1"]) == 0
    changes = catalog.changes_since("docs", mark)
    assert [(i, d) for i, _, d in changes] == [("id1", True)]
    assert catalog.load_vectors("docs", "m@1")[0] == ["id0", "id2"]
    assert catalog.get_items("docs", ["id1"]) == []
    assert catalog.get_items("docs", ["id1"], include_deleted=True)[0].deleted
    # a deleted item comes back through upsert, even with the same content
    again = [it for it in _items(3) if it.id == "id1"]
    assert catalog.plan_upsert("docs", again) == again
    catalog.upsert("docs", again, {"m@1": _vecs(1)})
    assert catalog.get_collection("docs").item_count == 3


def test_dual_write_backfill_and_stale_vectors(catalog: Catalog) -> None:
    items = _items(4)
    catalog.upsert("docs", items, {"m@1": _vecs(4)})
    assert catalog.missing_vectors("docs", "m@2") == [f"id{i}" for i in range(4)]
    assert catalog.put_vectors("docs", "m@2", ["id0", "id1", "ghost"], _vecs(3, dim=8)) == 2
    assert catalog.missing_vectors("docs", "m@2") == ["id2", "id3"]
    # changing id0's text with only an m@1 vector makes its m@2 vector stale: dropped
    catalog.upsert("docs", [ItemIn("id0", "rewritten", {})], {"m@1": _vecs(1)})
    assert catalog.missing_vectors("docs", "m@2") == ["id0", "id2", "id3"]
    # dual write keeps both
    catalog.upsert("docs", [ItemIn("id2", "again", {})], {"m@1": _vecs(1), "m@2": _vecs(1, dim=8)})
    assert catalog.missing_vectors("docs", "m@2") == ["id0", "id3"]
    with pytest.raises(DimensionMismatch, match="dim 8"):
        catalog.put_vectors("docs", "m@2", ["id3"], _vecs(1, dim=5))
    info = catalog.set_candidate_version("docs", "m@2")
    assert info.candidate_version == "m@2"
    info = catalog.set_active_version("docs", "m@2")
    assert (info.model_version, info.dim, info.candidate_version) == ("m@2", 8, None)


def test_bad_vectors_and_items_are_refused(catalog: Catalog) -> None:
    items = _items(2)
    with pytest.raises(InvalidInput, match="shape"):
        catalog.upsert("docs", items, {"m@1": _vecs(3)})
    bad = _vecs(2)
    bad[0, 0] = np.nan
    with pytest.raises(InvalidInput, match="NaN"):
        catalog.upsert("docs", items, {"m@1": bad})
    with pytest.raises(DimensionMismatch):
        catalog.upsert("docs", items, {"m@1": _vecs(2, dim=3)})
    with pytest.raises(InvalidInput, match="twice"):
        catalog.upsert("docs", [items[0], items[0]], {"m@1": _vecs(2)})
    with pytest.raises(InvalidInput):
        ItemIn("", "x")
    with pytest.raises(InvalidInput, match="no text"):
        ItemIn("a", "   ")
    with pytest.raises(InvalidInput, match="JSON"):
        ItemIn("a", "x", {"v": float("nan")})
    with pytest.raises(CollectionNotFound):
        catalog.upsert("nope", items, {"m@1": _vecs(2)})
    with pytest.raises(ModelNotFound):
        catalog.set_active_version("docs", "unknown@3")
    assert catalog.get_collection("docs").item_count == 0


def test_failed_upsert_writes_nothing(catalog: Catalog) -> None:
    """The vectors of the second model version are bad: the whole upsert rolls back."""
    good, bad = _vecs(2), _vecs(2, dim=8)
    bad[1, 1] = np.inf
    with pytest.raises(InvalidInput):
        catalog.upsert("docs", _items(2), {"m@1": good, "m@2": bad})
    assert catalog.all_ids("docs", include_deleted=True) == []


def test_lineage_and_stats(catalog: Catalog) -> None:
    catalog.start_run("docs", "run-1", "/data/f.jsonl")
    catalog.upsert("docs", _items(2), {"m@1": _vecs(2)}, run_id="run-1",
                   source="/data/f.jsonl", lines=[7, 9])
    catalog.finish_run("docs", "run-1", {"read": 2})
    conn = sqlite3.connect(catalog.path)
    rows = conn.execute("SELECT run_id, source, line FROM lineage ORDER BY line").fetchall()
    assert rows == [("run-1", "/data/f.jsonl", 7), ("run-1", "/data/f.jsonl", 9)]
    conn.close()
    stats = catalog.stats("docs")
    assert stats["vectors"] == {"m@1": 2} and stats["ingest_runs"][0]["report"] == {"read": 2}


def test_schema_version_and_newer_catalog_refused(workspace: Workspace) -> None:
    Catalog(workspace).close()
    conn = sqlite3.connect(workspace.catalog_path)
    assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == LATEST
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.execute("INSERT INTO schema_version VALUES (?)", (LATEST + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(IntegrityError, match="schema version"):
        Catalog(workspace)


def test_threads_share_one_catalog(catalog: Catalog) -> None:
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            items = [ItemIn(f"t{t}-{i}", f"thread {t} item {i}") for i in range(20)]
            catalog.upsert("docs", items, {"m@1": _vecs(20, seed=t)})
            catalog.load_vectors("docs", "m@1")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert catalog.get_collection("docs").item_count == 80


def test_migration_from_version_1_fills_live_counts(workspace: Workspace) -> None:
    from embedops.store.schema import MIGRATIONS

    conn = sqlite3.connect(workspace.catalog_path)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("INSERT INTO schema_version VALUES (1)")
    conn.execute("INSERT INTO collections (id, name, model_version, metric, dim, created_at) "
                 "VALUES (1, 'old', 'm@1', 'cosine', 4, 0)")
    for n, deleted in enumerate([None, None, 5.0]):
        conn.execute("INSERT INTO items (collection_id, item_id, text, metadata, content_hash, "
                     "created_at, updated_at, deleted_at) VALUES (1, ?, 't', '{}', 'h', 0, 0, ?)",
                     (f"i{n}", deleted))
    conn.commit()
    conn.close()
    with Catalog(workspace) as cat:
        assert cat.get_collection("old").item_count == 2
        assert [it.id for it in cat.iter_items("old")] == ["i0", "i1"]


def test_damaged_vector_row_is_an_integrity_error(catalog: Catalog) -> None:
    catalog.upsert("docs", _items(2), {"m@1": _vecs(2)})
    conn = sqlite3.connect(catalog.path)
    conn.execute("UPDATE vectors SET vector = X'00000000' WHERE rowid = 1")
    conn.commit()
    conn.close()
    with pytest.raises(IntegrityError, match="has 4 bytes, expected 16"):
        catalog.load_vectors("docs", "m@1")


def test_a_file_that_is_not_a_catalog_is_refused(workspace: Workspace) -> None:
    workspace.catalog_path.write_bytes(b"this is not SQLite at all" * 100)
    with pytest.raises(IntegrityError, match="not a readable embedops catalog"):
        Catalog(workspace)


def test_a_held_write_lock_is_unavailable_not_a_hang(workspace: Workspace) -> None:
    from embedops.errors import Unavailable

    cat = Catalog(workspace, timeout_s=0.05)
    blocker = sqlite3.connect(workspace.catalog_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(Unavailable, match="busy"):
            cat.create_collection("x", "m@1", dim=2)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert cat.create_collection("x", "m@1", dim=2).name == "x"
    cat.close()
