"""Version comparison on real word vectors: kNN overlap, Spearman of similarities, Procrustes
alignment (a rotated copy is recovered exactly), and explicit, checked use of saved maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedops.errors import DimensionMismatch, IntegrityError, InvalidInput, VersionMismatch
from embedops.monitor.compare import (
    AlignmentMap,
    apply_alignment,
    compare_versions,
    knn_overlap,
    similarity_spearman,
)


@pytest.fixture(scope="module")
def vectors(lee_corpus: Path) -> np.ndarray:
    """300 word vectors of a word2vec model trained on the Lee corpus."""
    from gensim.models import Word2Vec
    from gensim.utils import simple_preprocess

    sents = [simple_preprocess(x) for x in lee_corpus.read_text().splitlines()]
    model = Word2Vec(sents, vector_size=32, min_count=5, epochs=5, workers=1, seed=1)
    return np.asarray(model.wv.vectors[:300], dtype=np.float32)


def _rotation(dim: int, seed: int = 0) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(dim, dim)))
    return q


def test_rotated_copy_is_the_same_space(vectors: np.ndarray) -> None:
    rotated = vectors @ _rotation(32)
    comparison, alignment = compare_versions(vectors, rotated, "w@1", "w@2", k=10)
    assert comparison.knn_overlap == pytest.approx(1.0)
    assert comparison.similarity_spearman == pytest.approx(1.0, abs=1e-6)
    assert comparison.procrustes_residual < 1e-3 and comparison.aligned_knn_overlap == 1.0
    assert np.allclose(alignment.apply(vectors, "w@1"),
                       rotated / np.linalg.norm(rotated, axis=1, keepdims=True), atol=1e-4)


def test_noisy_version_scores_lower(vectors: np.ndarray) -> None:
    noisy = vectors + np.random.default_rng(1).normal(scale=vectors.std() * 1.5,
                                                      size=vectors.shape)
    assert knn_overlap(vectors, noisy, 10) < 0.6
    assert 0 < similarity_spearman(vectors, noisy) < 0.9


def test_saved_map_round_trip_and_refusals(vectors: np.ndarray, tmp_path: Path) -> None:
    _, alignment = compare_versions(vectors, vectors[:, :24], "w@1", "small@1", k=5)
    path = tmp_path / "map.safetensors"
    alignment.save(path)
    loaded = AlignmentMap.load(path)
    assert (loaded.source, loaded.target) == ("w@1", "small@1")
    assert apply_alignment(path, vectors[:3], "w@1").shape == (3, 24)
    with pytest.raises(VersionMismatch, match="w@1 → small@1"):
        apply_alignment(path, vectors[:3], "w@2")
    with pytest.raises(DimensionMismatch, match="dim 32"):
        apply_alignment(path, vectors[:3, :8], "w@1")
    path.write_bytes(b"not a map")
    with pytest.raises(IntegrityError, match="not a readable alignment map"):
        AlignmentMap.load(path)
    with pytest.raises(InvalidInput, match="probe rows differ"):
        compare_versions(vectors, vectors[:10], "a", "b")
    with pytest.raises(InvalidInput, match="k must be"):
        knn_overlap(vectors[:5], vectors[:5], 10)
