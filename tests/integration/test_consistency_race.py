"""The consistency check compares an index with a catalog that keeps taking writes: a write
committed while it reads the catalog (reading 1M ids takes seconds) is a recent change, left out
of the comparison, not an item the index lacks. Before, a server that loaded a refreshed
snapshot while writes arrived found "items only in the catalog" and rebuilt its whole index
inside a search request."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from serve_helpers import publish_lee_model

from embedops.config import Workspace
from embedops.engine import Embedops, consistency
from embedops.engine.index_meta import snapshot_meta
from embedops.search.sync import MARGIN_S
from embedops.store.catalog import Catalog


class _WriteDuringIdList:
    """The real catalog, with one real write (through a second connection) committed while the
    check reads the id list."""

    def __init__(self, catalog: Catalog, writer: Embedops) -> None:
        self._catalog, self._writer = catalog, writer

    def all_ids(self, collection: str) -> list[str]:
        self._writer.upsert_items(collection, [{"id": "late", "text": "written meanwhile"}],
                                  vectors=np.ones((1, 32), np.float32))
        return self._catalog.all_ids(collection)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._catalog, name)


def test_a_write_during_the_check_is_not_a_divergence(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    publish_lee_model(ws)
    rng = np.random.default_rng(1)
    with Embedops(ws) as api, Embedops(ws) as writer:
        api.collections.create("c", model="lee")
        api.upsert_items("c", [{"id": f"d{i}", "text": f"t {i}"} for i in range(300)],
                         vectors=rng.standard_normal((300, 32)).astype(np.float32))
        time.sleep(MARGIN_S + 0.5)  # the items are older than the build's look-back
        api.build_index("c", "flat", quiet=True)
        version = api.collections.info("c").model_version
        loaded = api._indexes.store("c", version).load_current()
        catalog = Catalog(ws)
        check = consistency.compare(_WriteDuringIdList(catalog, writer), "c", version,
                                    loaded.keys, snapshot_meta(loaded.info))
        catalog.close()
        assert check.ok, check.problems
        assert check.catalog_only == 0 and check.index_only == 0
        # the check still finds an item the index really lacks
        api.delete_items("c", ["d5"])
        keys = [k for k in loaded.keys if k != "d7"]
        meta = {**snapshot_meta(loaded.info), consistency.META_KEY: None}
        missing = consistency.compare(api._catalog, "c", version, keys, meta)
        assert not missing.ok and missing.catalog_only == 1
