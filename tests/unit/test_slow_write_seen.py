"""A write transaction that runs longer than the change trackers' look-back margin (a busy
server process: its GIL shared with searching threads) is still seen by a tracker that polled
while it ran: rows are stamped at the end of the transaction, not at its start. Before, another
worker's served index never saw those rows (they were "only in the catalog" until a consistency
check rebuilt the whole index)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from embedops.config import Workspace
from embedops.search.sync import MARGIN_S, ChangeTracker
from embedops.store import items as store_items
from embedops.store.catalog import Catalog
from embedops.store.models import ItemIn


def test_a_slow_write_is_seen_by_a_tracker_that_polled_during_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    writer, reader = Catalog(ws), Catalog(ws)
    writer.create_collection("c", model_version="none@1", dim=4)
    tracker = ChangeTracker(time.time())
    assert tracker.poll(reader, "c") == []
    inside = threading.Event()
    real = store_items._write_item

    def slow(*args: object, **kwargs: object) -> object:  # the transaction outlives the margin
        inside.set()
        time.sleep(MARGIN_S + 1.0)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store_items, "_write_item", slow)
    thread = threading.Thread(target=writer.upsert, args=("c", [ItemIn("a", "text", {})], {}))
    thread.start()
    assert inside.wait(10)
    time.sleep(MARGIN_S + 0.5)
    assert tracker.poll(reader, "c") == []  # not committed yet
    thread.join()
    seen = tracker.poll(reader, "c")
    assert [c.id for c in seen] == ["a"]
    writer.close()
    reader.close()
