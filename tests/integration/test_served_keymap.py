"""A refresh hands the new served index its id -> position map derived from the previous one
(in time proportional to the change, not a pass over every key): after refreshes that add,
rewrite, delete and merge, the map equals one rebuilt from scratch, and searches over it return
each live item once, with its newest vector."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from serve_helpers import publish_lee_model

from embedops.config import Workspace
from embedops.engine import Embedops

DIM = 32


def _write(api: Embedops, ids: list[str], rng: np.random.Generator) -> None:
    vectors = rng.standard_normal((len(ids), DIM)).astype(np.float32)
    api.upsert_items("keys", [{"id": i, "text": f"text {i}"} for i in ids], vectors=vectors)


def _rebuilt(served: object) -> dict[str, int]:
    keys, masked = served.keys, served.masked  # type: ignore[attr-defined]
    return {k: i for i, k in enumerate(keys) if i not in masked}


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_refreshed_key_map_equals_a_rebuilt_one(tmp_path: Path, kind: str) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    publish_lee_model(ws)
    rng = np.random.default_rng(7)
    with Embedops(ws) as api:
        api.collections.create("keys", model="lee")
        _write(api, [f"i{i}" for i in range(3000)], rng)
        api.build_index("keys", kind, quiet=True)
        version = api.collections.info("keys").model_version
        merged = 0
        for r in range(6):
            new = [f"r{r}-{i}" for i in range(200)]
            again = [f"i{i}" for i in rng.choice(3000, 60, replace=False)]
            again += [f"r{r - 1}-{i}" for i in range(20)] if r else []
            _write(api, new + again, rng)
            api.delete_items("keys", [f"i{i}" for i in rng.choice(3000, 25, replace=False)])
            merged += api.refresh_index("keys")["merged"]
            served = api._indexes.served("keys", version)
            assert served.key_pos == _rebuilt(served), r
            assert len(served.key_pos) == api.collections.info("keys").item_count
        assert merged > 0  # the size tiers merged some segments on the way
        hits = api.search("keys", vector=np.ones(DIM, np.float32), k=200).hits
        assert len({h.id for h in hits}) == len(hits) == 200
