"""ChangeTracker: each change reported once, and settled history not re-read on every poll."""

from __future__ import annotations

import time

import numpy as np

from embedops.config import Workspace
from embedops.search import sync
from embedops.search.sync import ChangeTracker
from embedops.store.catalog import Catalog
from embedops.store.models import ItemIn


class _Recording:
    """The real catalog, remembering how many rows each ``changes_since`` returned."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog, self.returned = catalog, []

    def changes_since(self, collection: str, ts: float):
        rows = self.catalog.changes_since(collection, ts)
        self.returned.append(len(rows))
        return rows


def _write(catalog: Catalog, ids: list[str]) -> None:
    items = [ItemIn(id=i, text=f"text {i}", metadata={}) for i in ids]
    catalog.upsert("c", items, {"m@1": np.ones((len(ids), 4), dtype=np.float32)})


def test_changes_reported_once_and_settled_rows_not_reread(
    workspace: Workspace, monkeypatch
) -> None:
    monkeypatch.setattr(sync, "MARGIN_S", 0.2)
    catalog = Catalog(workspace)
    catalog.create_collection("c", model_version="m@1", metric="cosine", dim=4)
    since = time.time()
    _write(catalog, [f"bulk{i}" for i in range(200)])
    tracker, recorder = ChangeTracker(since), _Recording(catalog)
    assert len(tracker.poll(recorder, "c")) == 200
    assert tracker.poll(recorder, "c") == []
    time.sleep(0.5)  # past the margin: the bulk write has settled
    tracker.poll(recorder, "c")
    assert tracker.poll(recorder, "c") == [] and recorder.returned[-1] == 0
    _write(catalog, ["late"])
    assert [c.id for c in tracker.poll(recorder, "c")] == ["late"]
