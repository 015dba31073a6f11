"""StaticEncoder: mean and SIF pooling, OOV accounting, loading through the registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedops.errors import DimensionMismatch, InvalidInput
from embedops.models.loader import load_encoder
from embedops.models.pooling import WORD_POOLING, PoolingConfig, StaticEncoder
from embedops.models.static import StaticVectors, publish_static
from embedops.text.tokenize import TokenizerSpec
from embedops.types import Encoder


@pytest.fixture(scope="module")
def docs(lee_corpus: Path) -> list[str]:
    return [line for line in lee_corpus.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def table(docs: list[str]) -> StaticVectors:
    from gensim.models import Word2Vec

    spec = TokenizerSpec()
    model = Word2Vec(
        [spec.tokenize(d) for d in docs], vector_size=20, min_count=2, epochs=2, seed=3, workers=1
    )
    return StaticVectors.from_gensim(model.wv)


@pytest.fixture(scope="module")
def ft_table(docs: list[str]) -> StaticVectors:
    from gensim.models import FastText

    spec = TokenizerSpec()
    sentences = [spec.tokenize(d) for d in docs[:80]]
    model = FastText(
        sentences, vector_size=12, min_count=2, epochs=1, seed=3, workers=1, bucket=3000
    )
    return StaticVectors.from_gensim(model.wv)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def test_mean_pooling_is_the_normalized_mean(table: StaticVectors) -> None:
    enc = StaticEncoder(table, pooling=PoolingConfig())
    assert isinstance(enc, Encoder)
    out = enc.encode(["The Government said, the police!", "police"])
    expected = _unit(
        np.mean([table.vector(w) for w in ("the", "government", "said", "the", "police")], axis=0)
    )
    np.testing.assert_allclose(out[0], expected, atol=1e-6)
    np.testing.assert_allclose(out[1], _unit(table.vector("police")), atol=1e-6)
    assert out.dtype == np.float32 and out.shape == (2, table.dim)


def test_empty_and_all_oov_texts_are_zero_and_flagged(table: StaticVectors) -> None:
    enc = StaticEncoder(table)
    texts = ["", "   ", "qqqzzz xxyyzz", "police qqqzzz", "12345 !!"]
    info = enc.encode_with_info(texts, batch_size=2)
    assert not np.isnan(info.vectors).any()
    assert info.empty.tolist() == [True, True, True, False, True]
    assert not info.vectors[info.empty].any()
    assert info.n_tokens.tolist() == [0, 0, 2, 2, 0]
    assert info.n_oov.tolist() == [0, 0, 2, 1, 0]
    assert info.oov_rate == pytest.approx(3 / 4)
    assert enc.last_oov_rate == pytest.approx(3 / 4)
    assert enc.encode([]).shape == (0, table.dim)


def test_batches_give_the_same_vectors(table: StaticVectors, docs: list[str]) -> None:
    enc = StaticEncoder(table)
    np.testing.assert_array_equal(
        enc.encode(docs[:30], batch_size=7), enc.encode(docs[:30], batch_size=64)
    )


def test_subwords_cover_oov_tokens(ft_table: StaticVectors) -> None:
    enc = StaticEncoder(ft_table)
    info = enc.encode_with_info(["governmentality", ""])
    assert info.n_oov.tolist() == [1, 0] and info.n_subword.tolist() == [1, 0]
    assert info.empty.tolist() == [False, True]
    np.testing.assert_allclose(
        info.vectors[0], _unit(ft_table.subword_vector("governmentality")), atol=1e-6
    )


def test_sif_weights_and_component(table: StaticVectors, docs: list[str]) -> None:
    enc = StaticEncoder(table, pooling=PoolingConfig(method="sif"))
    assert table.counts is not None
    weights = enc.token_weights
    assert weights[0] < weights[-1]  # frequent words weigh less
    assert weights[0] == pytest.approx(
        1e-3 / (1e-3 + table.counts[0] / table.counts.sum()), rel=1e-5
    )
    fitted = enc.fit_sif(docs, sample=200)
    assert fitted.pooling.component is not None and len(fitted.pooling.component) == table.dim
    u = np.asarray(fitted.pooling.component)
    assert np.linalg.norm(u) == pytest.approx(1.0, abs=1e-6)
    out = fitted.encode(docs[:50])
    assert np.abs(out @ u).max() < 1e-4  # the common direction is removed
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    again = enc.fit_sif(docs, sample=200)
    assert again.pooling.component == fitted.pooling.component  # deterministic


def test_sif_without_counts_uses_zipf(table: StaticVectors) -> None:
    bare = StaticVectors(table.index_to_key, table.vectors)
    weights = StaticEncoder(bare, pooling=PoolingConfig(method="sif")).token_weights
    assert np.all(np.diff(weights) >= 0) and weights[0] < weights[-1] <= 1.0


def test_registry_round_trip_with_pooling_and_weights(
    registry, table: StaticVectors, docs: list[str]
) -> None:  # type: ignore[no-untyped-def]
    spec = TokenizerSpec(lowercase=True)
    fitted = StaticEncoder(table, spec, pooling=PoolingConfig(method="sif")).fit_sif(
        docs, sample=100
    )
    mv = publish_static(
        registry, "sif", table, kind="word2vec", spec=spec, pooling=fitted.pooling.to_dict()
    )
    loaded = load_encoder("sif", registry)
    assert isinstance(loaded, StaticEncoder)
    assert loaded.version == mv.ref == "sif@1"
    assert loaded.tokenizer_fingerprint == mv.tokenizer_fingerprint
    assert loaded.pooling == fitted.pooling
    np.testing.assert_allclose(loaded.encode(docs[:5]), fitted.encode(docs[:5]), atol=1e-6)

    distilled = StaticVectors(
        table.index_to_key, table.vectors, weights=np.linspace(0.1, 2, len(table))
    )
    publish_static(
        registry, "dist", distilled, kind="distilled", spec=spec, pooling={"method": "mean"}
    )
    dist = load_encoder("dist@1", registry)
    words = ["police", "government"]
    w = np.array([distilled.weights[table.key_to_index[x]] for x in words])
    expected = _unit((w[:, None] * np.stack([table.vector(x) for x in words])).sum(axis=0))
    np.testing.assert_allclose(dist.encode(["police government"])[0], expected, atol=1e-6)


def test_bad_configuration_and_input(table: StaticVectors) -> None:
    with pytest.raises(InvalidInput, match="unknown pooling method 'max'"):
        PoolingConfig(method="max")
    with pytest.raises(InvalidInput, match="sif_a"):
        PoolingConfig(method="sif", sif_a=0)
    with pytest.raises(DimensionMismatch, match="dim 3"):
        StaticEncoder(table, pooling=PoolingConfig(method="sif", component=(1.0, 0.0, 0.0)))
    enc = StaticEncoder(table)
    with pytest.raises(InvalidInput, match="list of texts"):
        enc.encode("police")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="batch_size"):
        enc.encode(["police"], batch_size=0)
    with pytest.raises(InvalidInput, match="at least 2 texts"):
        enc.fit_sif(["qqqzzz", ""])
    assert PoolingConfig(
        **PoolingConfig(method="sif", component=(0.6, 0.8)).to_dict()
    ) == PoolingConfig(method="sif", component=(0.6, 0.8))


def test_unit_tokens_and_the_default_for_word_models(registry, table: StaticVectors) -> None:  # type: ignore[no-untyped-def]
    words = ["the", "government", "police"]
    unit_mean = StaticEncoder(table, pooling=PoolingConfig(unit_tokens=True)).encode(
        [" ".join(words)]
    )
    expected = _unit(np.mean([_unit(table.vector(w)) for w in words], axis=0))
    np.testing.assert_allclose(unit_mean[0], expected, atol=1e-6)
    assert StaticEncoder(table).pooling == WORD_POOLING
    publish_static(registry, "plain", table, kind="word2vec", spec=TokenizerSpec())
    loaded = load_encoder("plain", registry)
    assert isinstance(loaded, StaticEncoder) and loaded.pooling == WORD_POOLING
    weights = loaded.token_weights
    a = WORD_POOLING.sif_a
    expected = _unit(
        sum(
            a
            / (a + table.counts[table.key_to_index[w]] / table.counts.sum())
            * _unit(table.vector(w))
            for w in words
        )
    )
    np.testing.assert_allclose(loaded.encode([" ".join(words)])[0], expected, atol=1e-5)
    assert weights.dtype == np.float32
