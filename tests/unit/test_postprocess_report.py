"""postprocess_report on a real (small) word2vec model and the shipped WordNet gloss probe."""

from __future__ import annotations

import pytest

from embedops.errors import InvalidInput
from embedops.evaluate.postprocess import gloss_probe, postprocess_report
from embedops.models.registry import Registry
from embedops.models.static import StaticVectors, publish_static
from embedops.text.tokenize import TokenizerSpec


@pytest.fixture
def w2v_ref(registry: Registry, lee_corpus) -> str:
    from gensim.models import Word2Vec

    spec = TokenizerSpec()
    sentences = [spec.tokenize(line) for line in lee_corpus.read_text().splitlines()]
    model = Word2Vec(sentences, vector_size=48, min_count=2, epochs=5, seed=1, workers=1)
    table = StaticVectors.from_gensim(model.wv)
    return publish_static(registry, "lee", table, kind="word2vec", spec=spec).ref


def test_gloss_probe_pairs_lemmas_with_their_glosses() -> None:
    probe = gloss_probe(n_synsets=200, seed=3)
    assert len(probe.docs) == 200 and len(probe.queries) == len(probe.relevant) > 150
    assert all(rel and all(0 <= int(i) < 200 for i in rel) for rel in probe.relevant)
    assert gloss_probe(n_synsets=200, seed=3) == probe


def test_report_rows_show_quality_lost_and_memory_saved(registry, w2v_ref) -> None:
    steps = ["none", "pca:16", "truncate:8", "float32", "float16", "int8", "binary", "pca:16+int8"]
    rows = {
        r["step"]: r
        for r in postprocess_report(registry, w2v_ref, steps, probe=gloss_probe(n_synsets=300))
    }
    assert list(rows) == steps
    assert "not Matryoshka" in rows["truncate:8"]["error"]
    none = rows["none"]
    assert none["bytes_per_vector"] == 192 and none["saved_pct"] == 0.0
    assert none["recall@10_lost"] == 0.0 and "ws353" in none
    assert rows["float32"]["recall@10"] == none["recall@10"] and rows["float32"]["ws353_lost"] == 0
    assert rows["float16"]["saved_pct"] == 50.0 and abs(rows["float16"]["ws353_lost"]) < 0.01
    assert rows["int8"]["bytes_per_vector"] == 48 and rows["binary"]["bytes_per_vector"] == 6
    assert rows["pca:16+int8"]["dim"] == 16 and rows["pca:16+int8"]["bytes_per_vector"] == 16
    assert rows["pca:16+int8"]["saved_pct"] == pytest.approx(91.7)
    assert none["recall@10"] > 0.02  # the probe is solvable at all by this small model
    assert all(
        0 <= r["recall@10"] <= 1 and -1 <= r["ws353"] <= 1
        for r in rows.values()
        if "error" not in r
    )


@pytest.mark.parametrize("steps", [[], "int8", ["int8", ""], ["pca:x"], [None], ["int8+int4"]])
def test_bad_steps_are_refused_before_any_work(registry, steps) -> None:
    with pytest.raises(InvalidInput):
        postprocess_report(registry, "missing", steps)
