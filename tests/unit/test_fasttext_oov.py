"""Out-of-vocabulary vectors of fastText tables saved as ``unit-sum`` (the fastText default):
the n-gram mean mapped into the rows' space by a least-squares map fitted on the vocabulary
and scaled to the median row length, both stored in the vectors file and kept after reload;
tables without them keep fastText's n-gram mean exactly."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

from embedops.errors import FormatError
from embedops.models.pooling import PoolingConfig, StaticEncoder
from embedops.models.registry import Registry
from embedops.models.static import VECTORS_FILE, StaticVectors, publish_static
from embedops.text.tokenize import TokenizerSpec
from embedops.train import TrainConfig, train_static

FAST = dict(model="fasttext", epochs=2, dim=32, min_count=2, workers=1, seed=4, bucket=20_000)
UNSEEN = ("governmentalish", "zzyzxville", "photosynthesizers")


def _metadata(mv) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with safe_open(str(mv.file(VECTORS_FILE)), framework="numpy") as fh:
        return dict(fh.metadata() or {})


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_default_fasttext_maps_and_scales_oov_vectors(
    registry: Registry, lee_corpus: Path
) -> None:
    mv = train_static(lee_corpus, "ft", TrainConfig(**FAST), registry).version
    assert mv.manifest["params"]["vectors"] == "auto"
    assert mv.manifest["training"]["vectors_effective"] == "unit-sum"
    table = StaticVectors.read(mv)
    assert table.oov_map is not None and table.oov_map.shape == (32, 32)
    assert table.oov_norm == pytest.approx(float(np.median(table.norms)), rel=1e-6)
    assert 0 < table.oov_norm <= 2.0  # rows are sums of two unit vectors
    assert mv.manifest["training"]["oov"]["norm"] == pytest.approx(table.oov_norm, abs=1e-6)
    assert float(_metadata(mv)["oov_norm"]) == pytest.approx(table.oov_norm)
    raw = dataclasses.replace(table, oov_norm=0.0, oov_map=None)  # what it gave before
    for word in UNSEEN:
        assert word not in table
        vector, mean = table.vector(word), raw.vector(word)
        assert np.linalg.norm(vector) == pytest.approx(table.oov_norm, rel=1e-5)
        assert _cos(vector, mean @ table.oov_map) == pytest.approx(1.0, abs=1e-5)
    # The map puts an n-gram mean where the word's row is: built as if each word were
    # unknown, vocabulary words land closer to their own rows than their plain n-gram means.
    words = table.index_to_key[50:450]
    mapped = np.median([_cos(table.subword_vector(w), table.vector(w)) for w in words])
    plain = np.median([_cos(raw.subword_vector(w), table.vector(w)) for w in words])
    assert mapped > plain + 0.05


def test_a_reloaded_encoder_pools_the_scaled_oov_vector(
    registry: Registry, lee_corpus: Path
) -> None:
    mv = train_static(lee_corpus, "ft", TrainConfig(**FAST), registry).version
    unpooled = PoolingConfig(method="mean", normalize=False)
    encoder = StaticEncoder.from_version(mv)
    encoder = StaticEncoder(encoder.table, encoder.spec, mv.ref, unpooled)
    expected = encoder.table.oov_norm
    vectors = encoder.encode([UNSEEN[0], f"{UNSEEN[0]} government"])
    assert np.linalg.norm(vectors[0]) == pytest.approx(expected, rel=1e-5)
    both = (encoder.table.vector(UNSEEN[0]) + encoder.table.vector("government")) / 2
    np.testing.assert_allclose(vectors[1], both, rtol=1e-5, atol=1e-6)


def test_sum_fasttext_keeps_the_ngram_mean(registry: Registry, lee_corpus: Path) -> None:
    mv = train_static(lee_corpus, "s", TrainConfig(**FAST, vectors="sum"), registry).version
    table = StaticVectors.read(mv)
    assert table.oov_norm == 0.0 and table.oov_map is None and "oov_norm" not in _metadata(mv)
    assert "oov" not in mv.manifest["training"]
    assert TrainConfig(vectors="unit-sum").saved_vectors == "unit-sum"  # word2vec: no n-grams


def test_a_table_without_the_record_reads_back_as_the_plain_ngram_mean(
    registry: Registry, lee_corpus: Path
) -> None:
    from gensim.models import FastText
    from gensim.utils import simple_preprocess

    sentences = [simple_preprocess(line) for line in lee_corpus.read_text().splitlines()]
    kv = FastText(sentences, vector_size=16, min_count=3, epochs=1, seed=1, workers=1,
                  bucket=4000).wv
    mv = publish_static(registry, "old", StaticVectors.from_gensim(kv), kind="fasttext",
                        spec=TokenizerSpec(subword_min=3, subword_max=6))
    assert set(_metadata(mv)) == {"minn", "maxn", "bucket"}  # the layout older files have
    back = StaticVectors.read(mv)
    assert back.oov_norm == 0.0 and back.oov_map is None
    for word in UNSEEN:
        np.testing.assert_array_equal(back.vector(word), kv.get_vector(word))


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_a_bad_oov_norm_or_map_is_refused(bad: float) -> None:
    one = np.ones((1, 2), dtype=np.float32)
    with pytest.raises(FormatError, match="oov_norm"):
        StaticVectors(["a"], one, oov_norm=bad)
    with pytest.raises(FormatError, match="oov_map"):
        StaticVectors(["a"], one, oov_map=np.eye(3, dtype=np.float32))
