"""SnapshotStore: staged publish, checksums, quarantine of corrupt snapshots, rollback, pruning."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embedops.errors import InvalidInput, NotFound, Unavailable
from embedops.index import make_index
from embedops.index.snapshot import (
    CURRENT,
    QUARANTINE,
    STAGING,
    SnapshotStore,
    snapshot_root,
)
from index_testing import one_faiss_thread  # noqa: F401 (autouse fixture)

DIM = 8
META = {"collection": "docs", "model_version": "minilm@2", "tokenizer_fingerprint": "abc"}


def index_of(n: int, kind: str = "flat", seed: int = 0):
    rng = np.random.default_rng(seed)
    index = make_index(kind, DIM, "cosine")
    index.build(rng.standard_normal((n, DIM)).astype(np.float32), np.arange(n))
    return index


def keys(n: int) -> list[str]:
    return [f"item-{i}" for i in range(n)]


def flip_byte(path: Path, at: int = 64) -> None:
    data = bytearray(path.read_bytes())
    data[min(at, len(data) - 1)] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def store(tmp_path: Path) -> SnapshotStore:
    return SnapshotStore(snapshot_root(tmp_path / "indexes", "docs", "minilm@2"), keep=3)


def test_root_replaces_at_in_model_version(tmp_path: Path):
    assert snapshot_root(tmp_path, "docs", "minilm@2") == tmp_path / "docs" / "minilm_2"


def test_publish_writes_manifest_and_load_round_trips(store: SnapshotStore):
    info = store.publish(index_of(40, "hnsw"), keys(40), META)
    manifest = json.loads((info.path / "manifest.json").read_text())
    assert manifest["collection"] == "docs" and manifest["model_version"] == "minilm@2"
    assert manifest["item_count"] == 40 and manifest["backend"] == "hnsw"
    assert manifest["meta"]["tokenizer_fingerprint"] == "abc" and manifest["built_at"]
    assert {"keys.json", "index/index.faiss", "index/index.json"} <= set(manifest["files"])
    assert all(len(sha) == 64 for sha in manifest["files"].values())
    assert (store.root / CURRENT).read_text().strip() == info.name
    assert not any((store.root / STAGING).iterdir())
    loaded = store.load_current()
    assert loaded.info.name == info.name and loaded.info.current
    assert loaded.keys == keys(40) and loaded.index.count == 40
    ids, _ = loaded.index.search(np.ones((1, DIM), np.float32), 3)
    assert [loaded.keys[i] for i in ids[0]][0].startswith("item-")


def test_nothing_published_is_unavailable(store: SnapshotStore):
    with pytest.raises(Unavailable, match="no index snapshot") as err:
        store.load_current()
    assert err.value.http_status == 503
    assert store.list() == [] and store.current() is None and store.verify() == []


def test_corrupt_current_is_quarantined_and_previous_served(store: SnapshotStore):
    good = store.publish(index_of(30), keys(30), META)
    bad = store.publish(index_of(50, seed=1), keys(50), META)
    flip_byte(bad.path / "index" / "index.faiss")
    checks = {c.name: c for c in store.verify()}
    assert checks[good.name].ok and not checks[bad.name].ok
    assert "checksum mismatch in index/index.faiss" in checks[bad.name].problems
    loaded = store.load_current()
    assert loaded.info.name == good.name and loaded.index.count == 30
    assert (store.root / QUARANTINE / bad.name).is_dir()
    reason = json.loads((store.root / QUARANTINE / bad.name / "QUARANTINE-REASON.json").read_text())
    assert reason["problems"]
    assert store.current().name == good.name  # CURRENT repointed: the corrupt one is never served
    assert [s.name for s in store.list()] == [good.name]


def test_all_corrupt_raises_unavailable(store: SnapshotStore):
    only = store.publish(index_of(20), keys(20), META)
    flip_byte(only.path / "keys.json", at=3)
    with pytest.raises(Unavailable, match="rebuild"):
        store.load_current()
    assert (store.root / QUARANTINE / only.name).is_dir()


def test_missing_and_extra_files_are_detected(store: SnapshotStore):
    info = store.publish(index_of(20), keys(20), META)
    (info.path / "index" / "ids.npy").unlink()
    (info.path / "stray.bin").write_bytes(b"x")
    problems = store.verify(all=False)[0].problems
    assert "missing file index/ids.npy" in problems and "unexpected file stray.bin" in problems


def test_rollback_points_at_previous_and_keeps_n(store: SnapshotStore):
    names = [store.publish(index_of(10 + i), keys(20), META).name for i in range(5)]
    assert [s.name for s in store.list()] == names[-3:]  # keep=3 prunes the oldest
    back = store.rollback()
    assert back.name == names[-2] and store.load_current().index.count == 13
    assert store.rollback().name == names[-3]
    with pytest.raises(NotFound, match="no good snapshot older"):
        store.rollback()
    store.publish(index_of(7), keys(20), META)  # publishing after a rollback serves the new one
    assert store.load_current().index.count == 7


def test_rollback_skips_a_corrupt_previous(store: SnapshotStore):
    first = store.publish(index_of(10), keys(10), META)
    middle = store.publish(index_of(11), keys(11), META)
    store.publish(index_of(12), keys(12), META)
    flip_byte(middle.path / "index" / "index.faiss")
    assert store.rollback().name == first.name


def test_publish_refuses_bad_input(store: SnapshotStore):
    with pytest.raises(InvalidInput, match="keys"):
        store.publish(index_of(10), keys(5), META)
    with pytest.raises(InvalidInput, match="model_version"):
        store.publish(index_of(10), keys(10), {"collection": "docs"})
    with pytest.raises(InvalidInput, match="keep"):
        SnapshotStore(store.root, keep=0)
    assert store.list() == []


def test_failed_publish_leaves_current_untouched(store: SnapshotStore, monkeypatch):
    good = store.publish(index_of(10), keys(10), META)
    index = index_of(12)

    def boom(folder):
        Path(folder).mkdir(parents=True)
        (Path(folder) / "partial.bin").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(index, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        store.publish(index, keys(12), META)
    assert store.current().name == good.name
    assert [s.name for s in store.list()] == [good.name]
    assert not any((store.root / STAGING).iterdir())


def test_quantized_snapshot_maps_full_vectors(store: SnapshotStore):
    store.publish(index_of(300, "sq8"), keys(300), META)
    loaded = store.load_current()
    assert all(isinstance(p, np.memmap) for p in loaded.index._store.parts)
    assert loaded.index.search(np.ones((2, DIM), np.float32), 5)[0].shape == (2, 5)
