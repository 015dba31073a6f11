"""The rabitq backend: at most 2 bits per dimension in RAM, exact scores after rescoring, the
full vectors memory-mapped after load, per-call nprobe / qb / rescore_factor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedops.errors import InvalidInput
from embedops.index import load_index, make_index
from index_testing import one_faiss_thread  # noqa: F401 (autouse fixture)


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    middle = rng.standard_normal((20, dim)) * 2
    x = middle[rng.integers(0, 20, n)] + rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("nb_bits", [1, 2])
def test_ram_per_vector_is_at_most_a_sixteenth_of_flat(nb_bits: int):
    dim = 384
    data = clustered(3000, dim)
    small, large = make_index("rabitq", dim, params={"nb_bits": nb_bits}), None
    small.build(data[:1000], np.arange(1000))
    large = make_index("rabitq", dim, params={"nb_bits": nb_bits})
    large.build(data[:1000], np.arange(1000))
    large.add(data[1000:], np.arange(1000, 3000))
    per_vector = (large.memory_bytes() - small.memory_bytes()) / 2000
    assert per_vector <= dim * nb_bits / 8 + 48, per_vector  # codes, factors, id, id lookup
    if nb_bits == 1:
        assert per_vector <= dim * 4 / 16 + 16  # 1/16 of float32, plus the ids
    assert large.describe()["bits_per_dim"] == nb_bits


def test_rescored_scores_are_exact_and_knobs_apply_per_call(tmp_path: Path):
    dim = 64
    data, queries = clustered(4000, dim), clustered(50, dim, seed=1)
    index = make_index("rabitq", dim, params={"nlist": 32})
    index.build(data, np.arange(4000) * 3)
    truth = np.argsort(-(queries @ data.T), axis=1)[:, :10] * 3
    ids, scores = index.search(queries, 10, search_params={"nprobe": 32, "rescore_factor": 50})
    hits = np.mean([len(set(a) & set(b)) for a, b in zip(ids, truth, strict=True)]) / 10
    assert hits >= 0.95
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ data.T, ids // 3, 1),
                               rtol=1e-4, atol=1e-5)
    quantized = index.search(queries, 10, search_params={"qb": 0, "nprobe": 32})
    assert quantized[0].shape == (50, 10)
    assert index.search(queries, 10)[0].tolist() == index.search(queries, 10)[0].tolist()
    with pytest.raises(InvalidInput, match="qb"):
        index.search(queries, 10, search_params={"qb": 9})
    index.save(tmp_path / "ix")
    loaded = load_index(tmp_path / "ix")
    assert all(isinstance(p, np.memmap) for p in loaded._store.parts)  # type: ignore[attr-defined]  # on disk
    np.testing.assert_array_equal(loaded.search(queries, 10)[0], index.search(queries, 10)[0])


def test_fast_scan_codes_rescore_remove_and_round_trip(tmp_path: Path):
    dim = 64
    data, queries = clustered(5000, dim), clustered(50, dim, seed=1)
    index = make_index("rabitq", dim, params={"nlist": 32, "fast_scan": True})
    index.build(data, np.arange(5000))
    truth = np.argsort(-(queries @ data.T), axis=1)[:, :10]
    ids, scores = index.search(queries, 10, search_params={"nprobe": 32, "rescore_factor": 50})
    hits = np.mean([len(set(a) & set(b)) for a, b in zip(ids, truth, strict=True)]) / 10
    assert hits >= 0.95
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ data.T, ids, 1),
                               rtol=1e-4, atol=1e-5)
    with pytest.raises(InvalidInput, match="qb"):
        index.search(queries, 10, search_params={"qb": 4})
    per_vector = index.memory_bytes() / 5000
    assert per_vector <= dim * 4 / 16 + 32, per_vector
    assert index.remove(np.arange(0, 5000, 2)) == 2500
    left, _ = index.search(queries, 10, search_params={"nprobe": 32})
    assert (left % 2 == 1).all()
    index.save(tmp_path / "fs")
    loaded = load_index(tmp_path / "fs")
    assert loaded.params.fast_scan  # type: ignore[attr-defined]
    np.testing.assert_array_equal(loaded.search(queries, 10)[0], index.search(queries, 10)[0])
    with pytest.raises(InvalidInput, match="fast_scan"):
        make_index("rabitq", dim, params={"fast_scan": 1})
