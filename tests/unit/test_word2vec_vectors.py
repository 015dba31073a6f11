"""What ``vectors="unit-sum"`` saves: unit(input vector) + unit(output vector) per word."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedops.errors import InvalidInput
from embedops.models.registry import Registry
from embedops.models.static import StaticVectors
from embedops.train import TrainConfig, train_static

ONE_THREAD = dict(epochs=2, dim=32, min_count=2, workers=1, seed=5)


def _unit(m: np.ndarray) -> np.ndarray:
    return m / np.linalg.norm(m, axis=1, keepdims=True)


@pytest.mark.parametrize("model", ["word2vec", "fasttext"])
def test_unit_sum_adds_unit_input_and_unit_output_vectors(
    registry: Registry, lee_corpus: Path, model: str
) -> None:
    one = dict(ONE_THREAD, model=model, bucket=2000)
    inputs = StaticVectors.read(
        train_static(lee_corpus, "i", TrainConfig(**one, vectors="input"), registry).version)
    mixed = StaticVectors.read(
        train_static(lee_corpus, "u", TrainConfig(**one, vectors="unit-sum"), registry).version)
    assert mixed.index_to_key == inputs.index_to_key
    # One thread and one seed train the same model: what is left after taking away the
    # unit input vector is the unit output vector.
    rest = mixed.vectors - _unit(inputs.vectors)
    assert np.allclose(np.linalg.norm(rest, axis=1), 1.0, atol=1e-4)
    assert not np.allclose(rest, _unit(inputs.vectors), atol=1e-2)


def test_unit_sum_is_refused_for_the_torch_trainer() -> None:
    with pytest.raises(InvalidInput, match="unit-sum"):
        TrainConfig(vectors="unit-sum", device="cpu")
    assert TrainConfig(vectors="unit-sum").saved_vectors == "unit-sum"
