"""Dense search over a served snapshot: filters (pre- and post-filter), overlay, tombstones,
and the lexical view following the catalog. Real SQLite catalog, real FAISS indexes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedops.config import Workspace
from embedops.errors import InvalidInput, LimitExceeded
from embedops.index import make_index
from embedops.search import dense as dense_mod
from embedops.search.dense import check_k, dense_search, exact_search
from embedops.search.filters import compile_filters
from embedops.search.served import ServedIndex, catalog_position
from embedops.search.view import CollectionView
from embedops.store.catalog import Catalog
from embedops.store.models import ItemIn

DIM = 16
VERSION = "toy@1"


@pytest.fixture
def world(workspace: Workspace, lee_corpus: Path):
    lines = [x.strip() for x in lee_corpus.read_text(errors="replace").splitlines() if x.strip()]
    rng = np.random.default_rng(7)
    vecs = rng.normal(size=(len(lines), DIM)).astype(np.float32)
    items = [
        ItemIn(f"d{i}", text, {"n": i, "parity": "even" if i % 2 == 0 else "odd"})
        for i, text in enumerate(lines)
    ]
    catalog = Catalog(workspace)
    catalog.create_collection("lee", model_version=VERSION, dim=DIM)
    catalog.upsert("lee", items, {VERSION: vecs})
    position = catalog_position(catalog, "lee")
    ids, stored = catalog.load_vectors("lee", VERSION)
    index = make_index("flat", DIM)
    index.build(stored, np.arange(len(ids)))
    meta = {"model_version": VERSION, "dim": DIM, "metric": "cosine", **position}
    served = ServedIndex(index, ids, meta)
    served.sync(catalog, "lee")
    assert served.pending == 0 and served.tombstoned == 0
    yield catalog, served, dict(zip(ids, stored, strict=True))
    catalog.close()


def _loader(catalog: Catalog):
    return lambda ids: catalog.load_vectors("lee", VERSION, list(ids))


def test_unfiltered_matches_brute_force(world) -> None:
    catalog, served, vectors = world
    q = vectors["d3"] + 0.1
    got = dense_search(served, q, 10)
    want = exact_search(q, list(vectors), np.stack(list(vectors.values())), "cosine", 10)
    assert [i for i, _ in got] == [i for i, _ in want]
    assert got[0][1] >= got[-1][1]


@pytest.mark.parametrize("prefilter_max", [5000, 3])
def test_filters_return_k_matching_hits(world, monkeypatch, prefilter_max: int) -> None:
    catalog, served, vectors = world
    monkeypatch.setattr(dense_mod, "PREFILTER_MAX", prefilter_max)
    view = CollectionView(catalog, "lee")
    q = vectors["d1"]
    for filters, expect in (
        ({"parity": "odd"}, lambda m: m["n"] % 2 == 1),
        ({"n": {"gte": 10, "lt": 20}}, lambda m: 10 <= m["n"] < 20),
        ({"n": {"in": [1, 2, 3, 4, 5]}}, lambda m: 1 <= m["n"] <= 5),
    ):
        filt = compile_filters(filters)
        hits = dense_search(served, q, 5, filt, view, _loader(catalog))
        assert len(hits) == 5
        metas = {it.id: it.metadata for it in catalog.get_items("lee", [h for h, _ in hits])}
        assert all(expect(metas[h]) for h, _ in hits)
        allowed = view.matching(filt)
        ids, vecs = _loader(catalog)(allowed)
        assert [h for h, _ in hits] == [h for h, _ in exact_search(q, ids, vecs, "cosine", 5)]
    assert dense_search(served, q, 5, compile_filters({"n": -1}), view, _loader(catalog)) == []


def test_writes_and_deletes_are_served_before_a_rebuild(world) -> None:
    catalog, served, vectors = world
    fresh = np.full((1, DIM), 3.0, dtype=np.float32)
    catalog.upsert("lee", [ItemIn("new", "a brand new bushfire report", {})], {VERSION: fresh})
    catalog.upsert("lee", [ItemIn("d1", "rewritten text", {})], {VERSION: -fresh})
    catalog.delete("lee", ["d2"])
    served.sync(catalog, "lee")
    assert served.pending == 2 and served.tombstoned == 2
    hits = [h for h, _ in dense_search(served, fresh[0], len(vectors) + 5)]
    assert hits[0] == "new" and hits[-1] == "d1"
    assert "d2" not in hits and len(hits) == len(vectors)
    served.sync(catalog, "lee")  # nothing new: applying twice changes nothing
    assert served.pending == 2 and served.count == len(vectors)


def test_view_masks_deletes_and_reloads_after_writes(world) -> None:
    catalog, _, _ = world
    view = CollectionView(catalog, "lee")
    top = view.lexical("bushfires", 3)
    assert top
    catalog.delete("lee", [top[0][0]])
    view.sync()
    assert top[0][0] not in [i for i, _ in view.lexical("bushfires", 3)]
    catalog.upsert("lee", [ItemIn("zz", "zebra zebra crossing", {"n": 1000})],
                   {VERSION: np.ones((1, DIM), np.float32)})
    view.sync()
    assert view.lexical("zebra", 3)[0][0] == "zz"
    assert view.matching(compile_filters({"n": {"gte": 1000}})) == ["zz"]


@pytest.mark.parametrize("k,err", [(0, InvalidInput), (-1, InvalidInput), (1001, LimitExceeded),
                                   (2.5, InvalidInput), (True, InvalidInput)])
def test_bad_k(k: object, err: type) -> None:
    with pytest.raises(err):
        check_k(k)  # type: ignore[arg-type]
    assert check_k(1000) == 1000


def test_the_index_only_path_answers_as_the_general_one() -> None:
    """Between writes a search goes to the index alone (no overlay, tombstones or filter); it
    answers as the general path (taken when ``fetch`` is given) does: ties ordered by key, and
    a search short of k (an IVF cell at nprobe 1) left to the general path's further fetch."""
    rng = np.random.default_rng(11)
    base = rng.normal(size=(400, DIM)).astype(np.float32)
    vectors = np.concatenate([base, base[:50]])  # 50 exact duplicates: tied scores
    keys = [f"k{i:03d}" for i in range(len(vectors))]
    meta = {"model_version": VERSION, "dim": DIM, "metric": "cosine"}
    flat = make_index("flat", DIM)
    flat.build(vectors, np.arange(len(vectors)))
    served = ServedIndex(flat, keys, meta)
    for q in (base[3], base[7] * 3.0, rng.normal(size=DIM).astype(np.float32)):
        quick, general = served.search(q, 10), served.search(q, 10, fetch=10)
        assert [key for key, _ in quick] == [key for key, _ in general]
        np.testing.assert_allclose([s for _, s in quick], [s for _, s in general], rtol=1e-6)
    tied = served.search(base[3], 2)  # a row and its duplicate: the smaller key first
    assert tied[0][1] == tied[1][1] and tied[0][0] < tied[1][0]
    ivf = make_index("ivf", DIM, "cosine", {"nlist": 8, "nprobe": 1})
    ivf.build(vectors, np.arange(len(vectors)))
    served = ServedIndex(ivf, keys, meta)
    assert (ivf.search(base[5][None], 80)[0][0] < 0).any()  # one cell holds fewer than 80
    got = served.search(base[5], 80)  # short of k: the general path answers it
    assert got == served.search(base[5], 80, fetch=80) and 0 < len(got) < 80
    assert ServedIndex(make_index("flat", DIM), [], meta).search(base[5], 5) == []
