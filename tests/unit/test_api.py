"""The Embedops facade end to end on real parts: a word2vec model trained on gensim's Lee
corpus, a real SQLite catalog, real FAISS snapshots."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from embedops.api import Embedops
from embedops.config import Workspace
from embedops.errors import (
    CollectionNotFound,
    DimensionMismatch,
    FingerprintMismatch,
    InvalidInput,
    LimitExceeded,
    VersionMismatch,
)
from embedops.models.registry import Registry
from embedops.models.static import StaticVectors, publish_static
from embedops.text.tokenize import TokenizerSpec


@pytest.fixture(scope="module")
def lee_lines(lee_corpus: Path) -> list[str]:
    return [x.strip() for x in lee_corpus.read_text(errors="replace").splitlines() if x.strip()]


@pytest.fixture(scope="module")
def table(lee_lines: list[str]) -> StaticVectors:
    from gensim.models import Word2Vec

    spec = TokenizerSpec()
    sentences = [spec.tokenize(line) for line in lee_lines]
    model = Word2Vec(sentences, vector_size=32, min_count=2, epochs=5, workers=1, seed=1)
    return StaticVectors.from_gensim(model.wv)


@pytest.fixture
def eo(workspace: Workspace, table: StaticVectors, lee_lines: list[str]):
    registry = Registry(workspace)
    publish_static(registry, "w2v", table, kind="word2vec", spec=TokenizerSpec())
    api = Embedops(workspace)
    api.collections.create("lee", model="w2v")
    items = [{"id": f"d{i}", "text": t, "metadata": {"n": i, "odd": i % 2 == 1}}
             for i, t in enumerate(lee_lines)]
    assert api.upsert_items("lee", items) == {"received": 300, "written": 300, "unchanged": 0}
    yield api
    api.close()


def _ids(response) -> list[str]:
    return [h.id for h in response.hits]


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid", "two_stage"])
def test_every_mode_finds_a_document_from_its_own_text(eo: Embedops, lee_lines, mode) -> None:
    eo.build_index("lee", "flat")
    response = eo.search("lee", lee_lines[42], k=5, mode=mode)
    assert response.hits[0].id == "d42" and response.mode == mode
    hit = response.hits[0]
    assert hit.text == lee_lines[42] and hit.metadata == {"n": 42, "odd": False}
    expected = None if mode == "lexical" else "w2v@1"
    assert hit.model_version == expected == response.model_version
    assert len(response.hits) == 5 and response.took_ms >= 0


def test_upsert_is_idempotent_and_new_items_are_searchable_at_once(eo: Embedops) -> None:
    eo.build_index("lee", "hnsw")
    again = eo.upsert_items("lee", [{"id": "d1", "text": eo.get_items("lee", ["d1"])[0]
                                     .text, "metadata": {"n": 1, "odd": True}}])
    assert again == {"received": 1, "written": 0, "unchanged": 1}
    text = "cricket hamas qantas zimbabwe taliban"
    eo.upsert_items("lee", [{"id": "roo", "text": text, "metadata": {"n": 999}}])
    for mode in ("dense", "lexical", "hybrid", "two_stage"):
        assert eo.search("lee", text, k=3, mode=mode).hits[0].id == "roo", mode
    status = eo.index_status("lee")
    assert status["freshness"]["stale_items"] == 1
    assert status["served"]["overlay"] == 1
    eo.build_index("lee", "flat")
    assert eo.index_status("lee")["freshness"]["stale_items"] == 0


def test_deleted_items_are_never_returned(eo: Embedops, lee_lines) -> None:
    eo.build_index("lee", "flat")
    eo.search("lee", lee_lines[7], mode="lexical")  # warm the lexical view first
    assert eo.delete_items("lee", ["d7"]) == 1
    for mode in ("dense", "lexical", "hybrid", "two_stage"):
        assert "d7" not in _ids(eo.search("lee", lee_lines[7], k=50, mode=mode)), mode


def test_filters_in_every_mode(eo: Embedops, lee_lines) -> None:
    eo.build_index("lee", "flat")
    for mode in ("dense", "lexical", "hybrid", "two_stage"):
        hits = eo.search("lee", lee_lines[10], k=10, mode=mode, filters={"odd": True}).hits
        assert hits and all(h.metadata["odd"] is True for h in hits), mode
        ranged = eo.search("lee", lee_lines[10], k=3, mode=mode,
                           filters={"n": {"gte": 100, "lte": 110}}).hits
        assert all(100 <= h.metadata["n"] <= 110 for h in ranged), mode


def test_search_without_a_built_index_builds_one(eo: Embedops, lee_lines) -> None:
    assert eo.index_status("lee")["snapshot"] is None
    assert eo.search("lee", lee_lines[3]).hits[0].id == "d3"
    assert eo.index_status("lee")["snapshot"]["backend"] == "flat"


def test_corrupt_snapshot_is_rebuilt_from_the_catalog(eo: Embedops, workspace, lee_lines) -> None:
    first = eo.build_index("lee", "sq8")
    for path in Path(first["path"]).rglob("index.faiss"):
        path.write_bytes(b"garbage")
    fresh = Embedops(workspace)
    try:
        assert fresh.search("lee", lee_lines[5], k=1).hits[0].id == "d5"
        status = fresh.index_status("lee")
        assert status["snapshot"]["name"] != first["name"]
        assert status["snapshot"]["backend"] == "sq8"
    finally:
        fresh.close()


def test_rollback_serves_the_previous_snapshot(eo: Embedops) -> None:
    first = eo.build_index("lee", "flat")
    eo.build_index("lee", "hnsw", {"M": 16})
    assert eo.rollback_index("lee")["name"] == first["name"]
    assert eo.index_status("lee")["snapshot"]["name"] == first["name"]
    assert all(check.ok for check in eo.verify_index("lee"))


def test_query_encoder_must_match_the_index(eo: Embedops, workspace, table) -> None:
    registry = Registry(workspace)
    small = StaticVectors(table.index_to_key, table.vectors[:, :16])
    publish_static(registry, "small", small, kind="word2vec", spec=TokenizerSpec())
    publish_static(registry, "cased", table, kind="word2vec", spec=TokenizerSpec(lowercase=False))
    publish_static(registry, "w2v", table, kind="word2vec", spec=TokenizerSpec())
    eo.build_index("lee", "flat")
    with pytest.raises(DimensionMismatch, match=r"w2v@1 \(dim 32\).*small@1 \(dim 16\)"):
        eo.search("lee", "fire", model_version="small")
    with pytest.raises(FingerprintMismatch, match="cased@1"):
        eo.search("lee", "fire", model_version="cased")
    with pytest.raises(VersionMismatch, match="w2v@2"):
        eo.search("lee", "fire", model_version="w2v@2")


@pytest.mark.parametrize(
    "kwargs,err",
    [
        ({"query": ""}, InvalidInput),
        ({"query": "   "}, InvalidInput),
        ({"query": "x" * 20_000}, LimitExceeded),
        ({"k": 0}, InvalidInput),
        ({"k": 1001}, LimitExceeded),
        ({"mode": "semantic"}, InvalidInput),
        ({"hybrid_weight": 1.5}, InvalidInput),
        ({"filters": {"n": {"near": 3}}}, InvalidInput),
    ],
)
def test_bad_search_requests(eo: Embedops, kwargs, err) -> None:
    args = {"query": "fire", **kwargs}
    with pytest.raises(err):
        eo.search("lee", **args)


def test_unknown_collection_and_bad_items(eo: Embedops) -> None:
    with pytest.raises(CollectionNotFound, match="lee"):
        eo.search("nope", "fire")
    for bad in ("text", [{"id": "a"}], [{"id": "a", "text": "x", "metadata": [1]}],
                [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}], [3]):
        with pytest.raises(InvalidInput):
            eo.upsert_items("lee", bad)
    with pytest.raises(InvalidInput):
        eo.delete_items("lee", "d1")


def test_upsert_takes_the_record_shapes_ingest_takes(eo: Embedops) -> None:
    eo.upsert_items("lee", [{"id": "flat", "text": "fire crews", "section": 3,
                             "metadata": {"lang": "en"}}])
    (item,) = eo.get_items("lee", ["flat"])
    assert item.metadata == {"section": 3, "lang": "en"}
    assert eo.count("lee") == len(eo.item_ids("lee"))
    assert [it.id for it in eo.peek("lee", 2)] == eo.item_ids("lee")[:2]


def test_two_stage_with_a_cheap_model_reranks_with_precise_vectors(
    eo: Embedops, workspace, table, lee_lines
) -> None:
    registry = Registry(workspace)
    cheap = StaticVectors(table.index_to_key, table.vectors[:, :8])
    publish_static(registry, "cheap", cheap, kind="word2vec", spec=TokenizerSpec())
    config = eo.configure_two_stage("lee", "cheap", candidates=300)
    assert config.cheap_model == "cheap@1"
    assert not eo.missing_vectors("lee", "cheap@1")
    eo.build_index("lee", "flat")
    query = lee_lines[20]
    exact = eo.search("lee", query, k=10, mode="dense")
    two = eo.search("lee", query, k=10, mode="two_stage")
    # exact rerank over every item equals exact search (up to float ties)
    assert two.hits[0].id == "d20"
    assert [h.score for h in two.hits] == pytest.approx([h.score for h in exact.hits], abs=1e-5)
    eo.upsert_items("lee", [{"id": "new", "text": "a cricket match in sydney"}])
    assert not eo.missing_vectors("lee", "cheap@1")


def test_collections_and_models(eo: Embedops, workspace) -> None:
    assert [c.name for c in eo.collections.list()] == ["lee"]
    eo.build_index("lee", "flat")
    shown = eo.collections.show("lee")
    assert shown["index"]["snapshot"]["item_count"] == 300
    vectors = eo.embed(["fire in the hills", "rain"])
    assert vectors.shape == (2, 32) and vectors.dtype == np.float32
    word = eo.neighbours("w2v", "fire", k=3)
    assert len(word) == 3 and all(isinstance(w, str) for w, _ in word)
    assert -1 <= eo.similarity("w2v", "fire", "fires") <= 1
    assert len(eo.analogy("w2v", "man", "king", "woman", k=2)) == 2
    eo.collections.delete("lee")
    assert not (workspace.indexes_dir / "lee").exists()
    with pytest.raises(CollectionNotFound):
        eo.search("lee", "fire")
    shutil.rmtree(workspace.indexes_dir, ignore_errors=True)


def test_query_cache_returns_the_encoder_vectors(eo: Embedops, monkeypatch) -> None:
    from embedops.engine import models as api_models

    monkeypatch.setattr(api_models, "QUERY_CACHE_SIZE", 2)
    texts = ["fire", "rain", "fire", "smoke"]
    cached = eo.models.encode_queries(texts, "w2v")
    np.testing.assert_allclose(cached, eo.models.embed(texts, "w2v"), rtol=1e-6)
    assert len(eo._hub._queries) == 2
    assert eo.models.encode_queries([], "w2v").shape == (0, 32)


def test_concurrent_searches_during_writes_and_rebuilds(eo: Embedops, lee_lines) -> None:
    import threading

    eo.build_index("lee", "flat")
    errors: list[BaseException] = []

    def reader(mode: str) -> None:
        try:
            for i in range(15):
                hits = eo.search("lee", lee_lines[i], k=5, mode=mode).hits
                assert hits and "gone" not in [h.id for h in hits]
        except BaseException as exc:  # surfaced below with the mode that failed
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(m,)) for m in ("dense", "lexical", "hybrid")]
    for t in threads:
        t.start()
    for n in range(3):
        eo.upsert_items("lee", [{"id": f"new{n}", "text": lee_lines[n] + " update"}])
        eo.build_index("lee", "flat" if n % 2 else "hnsw")
    for t in threads:
        t.join()
    assert not errors, errors
    assert eo.index_status("lee")["snapshot"]["item_count"] == 303


def test_building_from_a_version_without_vectors_is_refused(eo: Embedops, workspace, table):
    from embedops.errors import Unavailable

    publish_static(Registry(workspace), "w2v", table, kind="word2vec", spec=TokenizerSpec())
    with pytest.raises(Unavailable, match="no w2v@2 vectors"):
        eo.build_index("lee", "flat", model_version="w2v@2")
    with pytest.raises(InvalidInput, match="annoy"):
        eo.build_index("lee", "annoy")


def test_ingest_a_file_then_search_and_backfill_the_cheap_model(
    eo: Embedops, workspace, table, tmp_path
) -> None:
    import json

    publish_static(Registry(workspace), "cheap", StaticVectors(table.index_to_key,
                   table.vectors[:, :8]), kind="word2vec", spec=TokenizerSpec())
    eo.configure_two_stage("lee", "cheap")
    path = tmp_path / "more.jsonl"
    rows = [{"id": "x1", "text": "cricket hamas qantas zimbabwe taliban"},
            {"id": "x2", "text": "a second new document about rain"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    report = eo.ingest("lee", path, quiet=True)
    assert report.embedded == 2
    assert not eo.missing_vectors("lee", "cheap@1")
    assert eo.search("lee", rows[0]["text"], k=1, mode="two_stage").hits[0].id == "x1"


def test_ids_where_and_delete_where(eo: Embedops) -> None:
    eo.upsert_items("lee", [{"id": f"w{i}", "text": f"fire number {i}", "metadata": {"w": i}}
                            for i in range(6)])
    assert eo.ids_where("lee", {"w": {"gte": 3}}) == ["w3", "w4", "w5"]
    assert len(eo.ids_where("lee")) == eo.count("lee")
    with pytest.raises(InvalidInput):
        eo.delete_where("lee", {})
    assert eo.delete_where("lee", {"w": {"in": [0, 1]}}) == 2
    assert eo.ids_where("lee", {"w": {"lte": 2}}) == ["w2"]


def test_an_empty_collection_builds_any_kind(eo: Embedops) -> None:
    eo.collections.create("empty", "w2v")
    for kind in ("hnsw", "ivf", "sq8"):
        assert eo.build_index("empty", kind, quiet=True)["count"] == 0
        assert eo.search("empty", "fire").hits == []


def test_upsert_with_vectors_computed_elsewhere(eo: Embedops) -> None:
    texts = ["smoke over the hills", "rain in the city"]
    vecs = eo.embed(texts, "w2v")
    report = eo.upsert_items("lee", [{"id": f"v{i}", "text": t} for i, t in enumerate(texts)],
                             vectors=vecs[::-1].copy())
    assert report["written"] == 2
    _, stored = eo.load_vectors("lee", "w2v", ["v0", "v1"])
    np.testing.assert_allclose(stored, vecs[::-1], rtol=1e-6)
    for bad in (vecs[:1], np.full_like(vecs, np.nan), [["x"] * 32] * 2):
        with pytest.raises(InvalidInput):
            eo.upsert_items("lee", [{"id": "v9", "text": "a"}, {"id": "v8", "text": "b"}],
                            vectors=bad)


def test_a_redacting_collection_stores_and_embeds_no_pii(eo: Embedops, tmp_path) -> None:
    info = eo.collections.create("private", "w2v", redact=True)
    assert info.redact and eo.collections.info("private").to_dict()["redact"] is True
    secret = "call 415 555 2671 or write to jane.doe@example.com about the fire"
    eo.upsert_items("private", [{"id": "a", "text": secret}])
    path = tmp_path / "more.jsonl"
    path.write_text('{"id": "b", "text": "card 4111 1111 1111 1111 and the fire"}\n')
    eo.ingest("private", path, quiet=True)
    a, b = eo.get_items("private", ["a", "b"])
    for item in (a, b):
        assert "555" not in item.text and "@" not in item.text and "4111" not in item.text
    assert "fire" in a.text and "fire" in b.text
    _, vecs = eo.load_vectors("private", "w2v", ["a"])
    np.testing.assert_allclose(vecs[0], eo.embed([a.text], "w2v")[0], rtol=1e-5, atol=1e-6)
    assert eo.upsert_items("private", [{"id": "a", "text": secret}])["unchanged"] == 1
    plain = eo.collections.create("plain", "w2v")
    assert plain.redact is False
