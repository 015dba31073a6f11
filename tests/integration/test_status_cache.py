"""Index status keeps the snapshot manifests it has checked (``index/verify_cache.py``): an
unchanged manifest is not checked again, while one damaged in place or replaced by another file
(even with its old times) is checked again and reported at the next status."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_helpers import lee_documents, publish_lee_model

from embedops.config import Workspace
from embedops.engine import Embedops
from embedops.errors import IntegrityError
from embedops.index import verify_cache
from embedops.index.snapshot import MANIFEST

STILL_S = 0.2  # how long a manifest must be unchanged before it is kept (RACY_S in the test)


@pytest.fixture
def indexed(workspace: Workspace) -> Iterator[tuple[Embedops, Path]]:
    """A collection with two snapshots (so a damaged current one is reported, not skipped)
    and the current snapshot's manifest."""
    publish_lee_model(workspace)
    with Embedops(workspace) as api:
        api.collections.create("docs", model="lee@1")
        api.upsert_items("docs", lee_documents(30))
        api.build_index("docs", "flat", quiet=True)
        api.build_index("docs", "flat", quiet=True)
        yield api, Path(api.index_status("docs")["snapshot"]["path"]) / MANIFEST


def _still(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify_cache, "RACY_S", STILL_S)
    time.sleep(STILL_S * 1.5)


def _checked_again(api: Embedops) -> bool:
    """Whether one more status call checked a manifest seal instead of using the cache."""
    before = verify_cache.counts()
    api.index_status("docs")
    after = verify_cache.counts()
    return after["checks"] > before["checks"]


def test_an_unchanged_manifest_is_checked_once_a_damaged_one_again(
        indexed: tuple[Embedops, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    api, manifest = indexed
    _still(monkeypatch)
    first = api.index_status("docs")
    hits = verify_cache.counts()["hits"]
    assert not _checked_again(api) and verify_cache.counts()["hits"] > hits
    assert api.index_status("docs")["snapshot"] == first["snapshot"]

    good = manifest.read_bytes()
    damaged = good.replace(b'"item_count"', b'"Xtem_count"', 1)
    assert len(damaged) == len(good) and damaged != good
    with open(manifest, "r+b") as fh:  # one byte changed in place: same inode, same size
        fh.write(damaged)
    with pytest.raises(IntegrityError, match="seal"):
        api.index_status("docs")

    manifest.write_bytes(good)  # repaired: served as before, and kept again once still
    _still(monkeypatch)
    assert api.index_status("docs")["snapshot"] == first["snapshot"]
    assert not _checked_again(api)


def test_a_replaced_manifest_with_its_old_times_is_checked_again(
        indexed: tuple[Embedops, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    api, manifest = indexed
    _still(monkeypatch)
    api.index_status("docs")
    assert not _checked_again(api)
    old = manifest.stat()
    other = manifest.with_name("other.json")
    other.write_bytes(manifest.read_bytes().replace(b'"item_count"', b'"Xtem_count"', 1))
    os.utime(other, ns=(old.st_atime_ns, old.st_mtime_ns))
    os.replace(other, manifest)  # same size and mtime, another inode
    with pytest.raises(IntegrityError, match="seal"):
        api.index_status("docs")


def test_a_manifest_changed_lately_is_not_kept(indexed: tuple[Embedops, Path],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    api, _ = indexed
    assert verify_cache.RACY_S >= 1.0  # the default: a write in the same clock tick is caught
    monkeypatch.setattr(verify_cache, "RACY_S", 600.0)  # every manifest here is newer
    api.index_status("docs")
    assert _checked_again(api) and _checked_again(api)
