"""The search hot path: vector queries, and the caches that keep per-search work small
(model resolve, the CURRENT pointer, catalog polls gated on SQLite's data_version) staying
correct when the workspace changes in this process or another one. Real parts throughout:
a word2vec model trained on gensim's Lee corpus, a real SQLite catalog, real FAISS snapshots."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from gensim.test.utils import datapath

from embedops.api import Embedops
from embedops.config import Workspace
from embedops.errors import DimensionMismatch, InvalidInput
from embedops.models.registry import Registry
from embedops.models.static import StaticVectors, publish_static
from embedops.text.tokenize import TokenizerSpec

LINES = [x.strip() for x in Path(datapath("lee_background.cor")).read_text(
    encoding="utf-8", errors="replace").splitlines() if x.strip()][:120]


@pytest.fixture(scope="module")
def table() -> StaticVectors:
    from gensim.models import Word2Vec

    spec = TokenizerSpec()
    model = Word2Vec([spec.tokenize(x) for x in LINES], vector_size=24, min_count=2, epochs=5,
                     workers=1, seed=1)
    return StaticVectors.from_gensim(model.wv)


@pytest.fixture
def eo(workspace: Workspace, table: StaticVectors):
    publish_static(Registry(workspace), "w2v", table, kind="word2vec", spec=TokenizerSpec())
    api = Embedops(workspace)
    api.collections.create("lee", model="w2v")
    api.upsert_items("lee", [{"id": f"d{i}", "text": t, "metadata": {"n": i}}
                             for i, t in enumerate(LINES)])
    api.build_index("lee", kind="flat", quiet=True)
    yield api
    api.close()


def _ids(response) -> list[str]:
    return [h.id for h in response.hits]


def test_a_vector_query_gives_the_same_hits_as_its_text(eo: Embedops) -> None:
    query = LINES[7][:200]
    vec = eo.embed([query], "w2v")[0]
    by_text = eo.search("lee", query, k=5)
    by_vector = eo.search("lee", vector=vec, k=5)
    assert _ids(by_vector) == _ids(by_text) and by_vector.model_version == "w2v@1"
    assert _ids(eo.search("lee", vector=vec.tolist(), k=5)) == _ids(by_text)
    assert _ids(eo.search("lee", vector=vec[None, :], k=5, filters={"n": 7})) == ["d7"]
    hybrid = eo.search("lee", query, k=5, mode="hybrid")
    assert _ids(eo.search("lee", query, k=5, mode="hybrid", vector=vec)) == _ids(hybrid)


def test_bad_query_vectors_are_refused_with_the_reason(eo: Embedops) -> None:
    with pytest.raises(DimensionMismatch, match="dim 5 .*dim 24") as err:
        eo.search("lee", vector=[0.1] * 5)
    assert err.value.http_status == 409
    for bad, why in (([0.1] * 23 + [float("nan")], "NaN"), ([1e39] * 24, "infinite"),
                     ([[0.1] * 24] * 2, "shape"),
                     (["a"] * 24, "not a list of numbers"), ([], "shape")):
        with pytest.raises(InvalidInput, match=why):
            eo.search("lee", vector=bad)
    vec = [0.1] * 24
    with pytest.raises(InvalidInput, match="not both"):
        eo.search("lee", "fire", vector=vec)
    with pytest.raises(InvalidInput, match="needs the query text"):
        eo.search("lee", vector=vec, mode="lexical")
    with pytest.raises(InvalidInput, match="lexical half"):
        eo.search("lee", vector=vec, mode="hybrid")
    with pytest.raises(InvalidInput, match="neither"):
        eo.search("lee")


def _counting(eo: Embedops, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every catalog change poll (the real method still answers)."""
    calls: list[str] = []
    real = eo._catalog.changes_since

    def changes_since(collection: str, ts: float):
        calls.append(collection)
        return real(collection, ts)

    monkeypatch.setattr(eo._catalog, "changes_since", changes_since)
    return calls


def test_an_unchanged_catalog_is_not_polled_and_a_write_is_seen_at_once(
    eo: Embedops, monkeypatch: pytest.MonkeyPatch
) -> None:
    vec = eo.embed(["bushfires burned homes near sydney"], "w2v")[0]
    eo.search("lee", vector=vec, k=3, filters={"n": {"gte": 0}})
    calls = _counting(eo, monkeypatch)
    for _ in range(5):
        eo.search("lee", vector=vec, k=3, filters={"n": {"gte": 0}})
    assert calls == []
    eo.upsert_items("lee", [{"id": "new", "text": "bushfires burned homes near sydney",
                             "metadata": {"n": -1}}])
    hits = eo.search("lee", vector=vec, k=1, filters={"n": -1})
    assert _ids(hits) == ["new"] and calls  # the served index and the filter view both looked
    assert _ids(eo.search("lee", vector=vec, k=1)) == ["new"]
    assert eo.collection_info("lee").item_count == len(LINES) + 1
    eo.delete_items("lee", ["new"])
    assert "new" not in _ids(eo.search("lee", vector=vec, k=5))
    assert eo.collection_info("lee").item_count == len(LINES)


def test_a_write_from_another_process_is_visible_to_the_next_search(eo: Embedops) -> None:
    vec = eo.embed(["cricket test match in adelaide"], "w2v")[0]
    assert "other" not in _ids(eo.search("lee", vector=vec, k=3))
    script = textwrap.dedent("""
        import sys
        from pathlib import Path
        from embedops.api import Embedops
        from embedops.config import Workspace
        with Embedops(Workspace(Path(sys.argv[1]))) as api:
            api.upsert_items("lee", [{"id": "other", "text": "cricket test match in adelaide"}])
    """)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    subprocess.run([sys.executable, "-c", script, str(eo.workspace.home)], check=True, env=env,
                   timeout=120)
    assert _ids(eo.search("lee", vector=vec, k=1)) == ["other"]
    assert _ids(eo.search("lee", "cricket adelaide", k=1, mode="lexical")) == ["other"]


def test_a_publish_or_rollback_elsewhere_is_served_next(eo: Embedops) -> None:
    query = LINES[3][:100]
    eo.search("lee", query)
    first = eo.served_index("lee", "w2v@1").meta["name"]
    with Embedops(eo.workspace) as other:
        second = other.build_index("lee", kind="flat", quiet=True)["name"]
        assert second != first
        assert eo.served_index("lee", "w2v@1").meta["name"] == second
        other.rollback_index("lee")
    served = eo.served_index("lee", "w2v@1")
    assert served.meta["name"] == first
    assert eo.served_index("lee", "w2v@1") is served  # unchanged pointer: kept


def test_model_resolve_is_cached_until_the_registry_changes(
    eo: Embedops, table: StaticVectors
) -> None:
    assert eo.models.resolve("w2v").ref == "w2v@1"
    assert eo.models.resolve("w2v") is eo.models.resolve("w2v")
    publish_static(Registry(eo.workspace), "w2v", table, kind="word2vec", spec=TokenizerSpec())
    assert eo.models.resolve("w2v").ref == "w2v@2"
    assert eo.models.resolve("w2v@1").ref == "w2v@1"
    Registry(eo.workspace).record_eval("w2v@1", "probe", {"score": 1.0})
    assert eo.models.resolve("w2v@1").manifest["eval"]["probe"] == {"score": 1.0}


def test_encoders_can_be_wrapped_through_the_hub_hook(eo: Embedops) -> None:
    made: list[str] = []

    class Doubling:
        def __init__(self, inner) -> None:
            self.inner = inner
            made.append(inner.version)

        def __getattr__(self, name: str):
            return getattr(self.inner, name)

        def encode(self, texts, **kw):
            return 2 * np.asarray(self.inner.encode(texts, **kw))

    plain = eo.embed(["fire"], "w2v")
    eo.models.wrap_encoders(Doubling)
    assert np.allclose(eo.embed(["fire"], "w2v"), 2 * plain)
    assert eo.models.encoder("w2v") is eo.models.encoder("w2v@1") and made == ["w2v@1"]
    eo.models.wrap_encoders(None)
    assert np.allclose(eo.embed(["fire"], "w2v"), plain)
