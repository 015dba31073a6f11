"""StaticVectors queries against gensim's own answers on small models trained on real text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedops.errors import DimensionMismatch, InvalidInput, OutOfVocabulary
from embedops.models.static import StaticVectors, publish_static
from embedops.text.tokenize import TokenizerSpec


@pytest.fixture(scope="module")
def sentences(lee_corpus: Path) -> list[list[str]]:
    from gensim.utils import simple_preprocess

    return [simple_preprocess(line) for line in lee_corpus.read_text().splitlines()]


@pytest.fixture(scope="module")
def w2v(sentences: list[list[str]]):  # type: ignore[no-untyped-def]
    from gensim.models import Word2Vec

    return Word2Vec(sentences, vector_size=24, min_count=2, epochs=3, seed=1, workers=1).wv


@pytest.fixture(scope="module")
def fasttext(sentences: list[list[str]]):  # type: ignore[no-untyped-def]
    from gensim.models import FastText

    return FastText(
        sentences, vector_size=16, min_count=3, epochs=1, seed=1, workers=1, bucket=4000
    ).wv


def test_oov_vector_from_subwords_equals_gensim(fasttext) -> None:  # type: ignore[no-untyped-def]
    table = StaticVectors.from_gensim(fasttext)
    assert table.has_subwords
    for word in ("governmentality", "zzyzx", "naïveté", "ab", "x", "日本語"):
        assert word not in table
        np.testing.assert_array_equal(table.vector(word), fasttext.get_vector(word))
    assert table.similarity("government", "governmentality") == pytest.approx(
        float(fasttext.similarity("government", "governmentality")), abs=1e-6
    )


def test_in_vocabulary_vector_and_neighbours_match_gensim(w2v) -> None:  # type: ignore[no-untyped-def]
    table = StaticVectors.from_gensim(w2v)
    np.testing.assert_array_equal(table.vector("government"), w2v["government"])
    ours = table.most_similar("government", k=7)
    theirs = w2v.most_similar("government", topn=7)
    assert [w for w, _ in ours] == [w for w, _ in theirs]
    np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-5)
    assert table.similarity("police", "army") == pytest.approx(
        float(w2v.similarity("police", "army")), abs=1e-6
    )


def test_most_similar_by_vector_and_exclude(w2v) -> None:  # type: ignore[no-untyped-def]
    table = StaticVectors.from_gensim(w2v)
    by_vector = table.most_similar(table.vector("police"), k=3)
    assert by_vector[0][0] == "police"  # a vector query does not exclude anything
    excluded = table.most_similar("police", k=5, exclude=[by_vector[1][0]])
    assert "police" not in [w for w, _ in excluded]
    assert by_vector[1][0] not in [w for w, _ in excluded]
    assert len(table.most_similar("police", k=10**6)) == len(table) - 1
    scores = [s for _, s in table.most_similar("police", k=20)]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("method", ["3cosadd", "3cosmul"])
def test_analogy_matches_gensim(w2v, method: str) -> None:  # type: ignore[no-untyped-def]
    table = StaticVectors.from_gensim(w2v)
    ours = table.analogy("man", "king", "woman", k=5, method=method)
    solve = w2v.most_similar if method == "3cosadd" else w2v.most_similar_cosmul
    theirs = solve(positive=["king", "woman"], negative=["man"], topn=5)
    assert [w for w, _ in ours] == [w for w, _ in theirs]
    np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-5)
    assert not {"man", "king", "woman"} & {w for w, _ in ours}


def test_word2vec_oov_raises_with_suggestions(w2v) -> None:  # type: ignore[no-untyped-def]
    table = StaticVectors.from_gensim(w2v)
    table.name = "lee@1"
    with pytest.raises(OutOfVocabulary) as info:
        table.vector("govermnent")
    assert "govermnent" in str(info.value) and "lee@1" in str(info.value)
    assert "government" in info.value.suggestions
    assert info.value.http_status == 404
    assert table.suggest("Police")[0] == "police"
    with pytest.raises(OutOfVocabulary):
        table.most_similar("qqqqqqqqqqqqqqqqqqqq")
    with pytest.raises(OutOfVocabulary):
        table.analogy("man", "king", "wommmman")


def test_bad_arguments(w2v) -> None:  # type: ignore[no-untyped-def]
    table = StaticVectors.from_gensim(w2v)
    for k in (0, -3):
        with pytest.raises(InvalidInput, match="k must be a positive integer"):
            table.most_similar("police", k=k)
        with pytest.raises(InvalidInput):
            table.analogy("man", "king", "woman", k=k)
    with pytest.raises(InvalidInput, match="unknown analogy method"):
        table.analogy("man", "king", "woman", method="3cosfoo")
    with pytest.raises(DimensionMismatch, match="dim 3"):
        table.most_similar(np.ones(3, dtype=np.float32))
    with pytest.raises(InvalidInput, match="zero"):
        table.most_similar(np.zeros(table.dim, dtype=np.float32))
    with pytest.raises(InvalidInput, match="no subword"):
        table.subword_vector("police")


def test_publish_and_read_round_trip(registry, fasttext) -> None:  # type: ignore[no-untyped-def]
    table = StaticVectors.from_gensim(fasttext)
    table.weights = np.linspace(0.5, 1.5, len(table)).astype(np.float32)
    mv = publish_static(registry, "ft", table, kind="fasttext", spec=TokenizerSpec())
    back = StaticVectors.read(mv)
    assert back.name == "ft@1" and back.index_to_key == table.index_to_key
    np.testing.assert_array_equal(back.vectors, table.vectors)
    np.testing.assert_array_equal(back.weights, table.weights)
    np.testing.assert_array_equal(back.vector("unseenword"), fasttext.get_vector("unseenword"))
    assert (back.minn, back.maxn, back.bucket) == (table.minn, table.maxn, table.bucket)


def test_read_refuses_non_static_kind(registry) -> None:  # type: ignore[no-untyped-def]
    with registry.draft("tf", "transformer", dim=4) as draft:
        (draft.path / "x.json").write_text("{}")
    with pytest.raises(InvalidInput, match="transformer model"):
        StaticVectors.read(registry.get("tf"))
