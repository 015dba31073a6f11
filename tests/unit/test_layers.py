"""Recall lost by layer on real Lee documents: a flat index loses nothing, an sq8 index loses
only to quantization (it scans every code), an unknown reference version is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedops.api import Embedops
from embedops.config import Workspace
from embedops.errors import ModelNotFound, NotFound, Unavailable
from embedops.models.registry import Registry
from embedops.models.static import StaticVectors, publish_static
from embedops.monitor.db import MonitorDB
from embedops.monitor.golden import make_query
from embedops.monitor.layers import recall_by_layer
from embedops.text.tokenize import TokenizerSpec


@pytest.fixture
def api(workspace: Workspace, lee_corpus: Path):
    from gensim.models import Word2Vec

    lines = [x for x in lee_corpus.read_text(errors="replace").splitlines() if x.strip()][:150]
    spec = TokenizerSpec()
    model = Word2Vec([spec.tokenize(x) for x in lines], vector_size=16, min_count=2, epochs=3,
                     workers=1, seed=4)
    publish_static(Registry(workspace), "w", StaticVectors.from_gensim(model.wv),
                   kind="word2vec", spec=spec)
    db = MonitorDB(workspace)
    db.create_set("g")
    db.add_queries("g", [make_query(" ".join(lines[i].split()[:8]), [f"d{i}"])
                         for i in range(0, 150, 5)])
    with Embedops(workspace) as facade:
        facade.collections.create("c", model="w")
        facade.upsert_items("c", [{"id": f"d{i}", "text": t} for i, t in enumerate(lines)])
        yield facade, db


def test_flat_and_sq8_layers(api) -> None:
    facade, db = api
    first = facade.build_index("c", "flat", quiet=True)["name"]
    flat = recall_by_layer(facade, db, "c", "g", k=5)
    assert flat.losses == {"quantization": 0.0, "ann": 0.0} and flat.exact_overlap == 1.0
    assert "no quantization loss" in flat.table()
    facade.build_index("c", "sq8", {"rescore_factor": 0}, quiet=True)
    sq8 = recall_by_layer(facade, db, "c", "g", k=5, snapshot=first)
    assert sq8.index_kind == "sq8" and sq8.losses["ann"] == 0.0
    assert sq8.losses["quantization"] == pytest.approx(sq8.stages["exact"] - sq8.stages["served"])
    assert sq8.stages[f"snapshot {first}"] == sq8.stages["exact"]  # the flat build was exact
    assert sq8.losses["snapshot"] == pytest.approx(sq8.losses["quantization"])
    assert "snapshot" in sq8.table()
    with pytest.raises(NotFound, match="no snapshot 'zzz'"):
        recall_by_layer(facade, db, "c", "g", snapshot="zzz")
    with pytest.raises(ModelNotFound):
        recall_by_layer(facade, db, "c", "g", reference_version="nope@1")
    db.create_set("empty")
    with pytest.raises(Unavailable, match="no queries"):
        recall_by_layer(facade, db, "c", "empty")


def test_a_segmented_snapshot_is_a_layer_too(api) -> None:
    facade, db = api
    facade.build_index("c", "flat", quiet=True)
    facade.upsert_items("c", [{"id": "extra", "text": "a bushfire near the coast"}])
    refreshed = facade.refresh_index("c")
    assert refreshed["changed"]
    name = facade.index_status("c")["snapshot"]["name"]
    report = recall_by_layer(facade, db, "c", "g", k=5, snapshot=name)
    assert report.stages[f"snapshot {name}"] == report.stages["exact"]  # flat segments: exact
