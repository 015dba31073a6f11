"""Backend-specific behaviour the shared contract cannot state: HNSW tombstones and rebuilds,
IVF cell defaults, quantized rescoring."""

from __future__ import annotations

import numpy as np
import pytest

from embedops.errors import InvalidInput
from embedops.index import make_index
from embedops.index.ivf import auto_nlist, auto_nprobe
from embedops.index.ivfpq import auto_m
from index_testing import one_faiss_thread  # noqa: F401 (autouse fixture)

DIM = 12


def data(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def test_hnsw_tombstones_hide_removed_then_rebuild_past_threshold():
    x = data(200)
    index = make_index("hnsw", DIM, "l2", {"rebuild_fraction": 0.25})
    index.build(x, np.arange(200))
    assert index.remove(np.arange(40)) == 40
    assert index.tombstones == 40 and index.count == 160  # 20% dead: below the threshold
    ids, _ = index.search(x[:40], 10)
    assert not np.isin(ids, np.arange(40)).any() and (ids >= 0).all()
    index.remove(np.arange(40, 60))  # 60 of 200 dead: past 25%, so the graph is rebuilt
    assert index.tombstones == 0 and index.count == 140
    assert index._index.ntotal == 140
    ids, _ = index.search(x[60:80], 1)
    assert (ids[:, 0] == np.arange(60, 80)).all()


def test_hnsw_upsert_of_a_tombstoned_id_serves_the_new_vector():
    x = data(100)
    index = make_index("hnsw", DIM)
    index.build(x, np.arange(100))
    index.upsert(x[99:100], np.array([7]))
    assert index.tombstones == 1
    ids, _ = index.search(x[99:100], 2)
    assert sorted(ids[0].tolist()) == [7, 99]
    ids, _ = index.search(x[7:8], 1)
    assert ids[0, 0] != 7


def test_a_hnsw_copy_grows_and_forgets_apart_from_its_original():
    x = data(300)
    index = make_index("hnsw", DIM)
    index.build(x[:200], np.arange(200))
    index.remove(np.array([3]))
    twin = index.copy()
    twin.add(x[200:], np.arange(200, 300))
    twin.remove(np.array([5]))
    assert (index.count, index.tombstones) == (199, 1)  # the original as it was
    assert (twin.count, twin.tombstones) == (298, 2)
    ids, _ = twin.search(x[200:300], 1)
    assert (ids[:, 0] == np.arange(200, 300)).all()
    assert index.search(x[5:6], 1)[0][0, 0] == 5 and twin.search(x[5:6], 1)[0][0, 0] != 5
    assert index.search(x[250:251], 1)[0][0, 0] != 250
    assert 3 not in twin.search(x[3:4], 5)[0][0]  # the copy keeps the original's tombstones


def test_hnsw_params_are_validated():
    with pytest.raises(InvalidInput, match="ef_search"):
        make_index("hnsw", DIM, "cosine", {"ef_search": 0})
    with pytest.raises(InvalidInput, match="rebuild_fraction"):
        make_index("hnsw", DIM, "cosine", {"rebuild_fraction": 1.5})


def test_ivf_defaults_scale_with_n():
    assert auto_nlist(20_000) == 512 and auto_nlist(1_000_000) == 4000 and auto_nlist(10) == 1
    assert auto_nprobe(512) == 85 and auto_nprobe(64) == 16 and auto_nprobe(4) == 4
    index = make_index("ivf", DIM)
    index.build(data(2000), np.arange(2000))
    described = index.describe()
    assert described["nlist"] == auto_nlist(2000) and described["trained_on"] == 2000


def test_ivfpq_m_must_divide_dim_and_defaults_divide():
    assert auto_m(384) == 48 and auto_m(100) == 10 and auto_m(12) == 6
    with pytest.raises(InvalidInput, match="divide"):
        make_index("ivfpq", DIM, "cosine", {"m": 5})


@pytest.mark.parametrize("kind", ["ivfpq", "sq8"])
def test_rescoring_returns_exact_scores_and_beats_codes_alone(kind: str):
    x = data(1500, seed=3)
    q = data(40, seed=4)
    truth = make_index("flat", DIM, "ip")
    truth.build(x, np.arange(1500))
    want, want_scores = truth.search(q, 10)

    def recall(params: dict) -> tuple[float, np.ndarray, np.ndarray]:
        index = make_index(kind, DIM, "ip", params)
        index.build(x, np.arange(1500))
        got, scores = index.search(q, 10)
        return (
            np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, want, strict=True)]),
            got,
            scores,
        )

    scan_all = {"nprobe": 64} if kind == "ivfpq" else {}  # isolate the codes from the cells
    plain, _, _ = recall({"rescore_factor": 0, **scan_all})
    rescored, got, scores = recall({"rescore_factor": 8, **scan_all})
    assert rescored >= plain and rescored >= 0.9
    np.testing.assert_allclose(scores, np.einsum("md,mkd->mk", q, x[got]), rtol=1e-5, atol=1e-5)


def test_rescore_params_are_validated():
    with pytest.raises(InvalidInput, match="rescore_dtype"):
        make_index("sq8", DIM, "cosine", {"rescore_dtype": "int8"})
    with pytest.raises(InvalidInput, match="rescore_factor"):
        make_index("ivfpq", DIM, "cosine", {"rescore_factor": -1})


@pytest.mark.parametrize("stride", [1, 1_000_003])
def test_ivfpq_rescoring_maps_dense_and_sparse_ids(stride: int):
    x = data(400, seed=5)
    ids = np.arange(400, dtype=np.int64) * stride + 7
    index = make_index("ivfpq", DIM, "l2")
    index.build(x, ids)
    index.remove(ids[:10])
    got, _ = index.search(x[10:60], 1)
    assert (got[:, 0] == ids[10:60]).all()


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_rescoring_paths_agree_with_brute_force(metric: str, dtype: str):
    x = data(800, seed=6)
    q = data(25, seed=7)
    truth = make_index("flat", DIM, metric)
    truth.build(x, np.arange(800))
    want, want_scores = truth.search(q, 10)
    index = make_index("sq8", DIM, metric, {"rescore_dtype": dtype, "rescore_factor": 20})
    index.build(x, np.arange(800))
    got, scores = index.search(q, 10)
    tol = 1e-4 if dtype == "float32" else 2e-2
    np.testing.assert_allclose(scores, want_scores, rtol=tol, atol=tol)
    assert np.mean(got == want) >= 0.97
