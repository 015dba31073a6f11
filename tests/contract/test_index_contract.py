"""One contract, every ANN backend: the same tests run on flat, hnsw, ivf, ivfpq, sq8 (FAISS)
and milvus (on milvus-lite, which pymilvus runs in process from a file in a temporary folder).

The tests use only the members of the ``Index`` protocol (embedops.index.protocol), so a new
backend (FAISS or not) passes them by keeping the contract, not by sharing FaissIndex."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from embedops.errors import AlreadyExists, DimensionMismatch, EmbedopsError, InvalidInput
from embedops.index import BACKENDS, Index, load_index, make_index, make_params
from index_testing import one_faiss_thread  # noqa: F401 (autouse fixture)

KINDS = sorted(BACKENDS)
DIM = 16


def clustered(n: int, dim: int = DIM, centers: int = 12, seed: int = 0) -> np.ndarray:
    """Points around random centers: the shape real embeddings have (topics)."""
    rng = np.random.default_rng(seed)
    middle = rng.standard_normal((centers, dim)) * 3
    which = rng.integers(0, centers, n)
    return (middle[which] + rng.standard_normal((n, dim))).astype(np.float32)


def exact(vectors: np.ndarray, queries: np.ndarray, metric: str) -> np.ndarray:
    """Brute-force scores (m, n), higher is better, as documented for every backend."""
    if metric == "cosine":
        vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    if metric == "l2":
        return -((queries[:, None, :] - vectors[None, :, :]) ** 2).sum(axis=2)
    return queries @ vectors.T


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return clustered(600)


@pytest.fixture(scope="module", autouse=True)
def milvus_lite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The milvus backend's server for this module: milvus-lite in a temporary folder."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EMBEDOPS_MILVUS_URI", str(tmp_path_factory.mktemp("milvus") / "lite.db"))
        yield
    if importlib.util.find_spec("pymilvus") is not None:
        from embedops.index.milvus_client import forget_connections

        forget_connections()


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    if request.param == "milvus" and importlib.util.find_spec("pymilvus") is None:
        pytest.skip("the milvus backend needs pymilvus (pip install 'embedops[milvus]')")
    return str(request.param)


def built(kind: str, data: np.ndarray, metric: str = "cosine", offset: int = 100) -> Index:
    index = make_index(kind, DIM, metric)
    index.build(data, np.arange(len(data), dtype=np.int64) + offset)
    return index


def test_every_backend_is_an_index(kind: str, data: np.ndarray, tmp_path: Path):
    index = built(kind, data[:50])
    assert isinstance(index, Index) and index.kind == kind
    assert (index.dim, index.metric, index.count) == (DIM, "cosine", 50)
    index.save(tmp_path / "ix")
    for again in (load_index(tmp_path / "ix"), type(index).load(tmp_path / "ix")):
        assert isinstance(again, Index) and again.kind == kind and again.count == 50
        np.testing.assert_array_equal(np.sort(again.ids()), np.arange(50) + 100)
    assert index.check_search_params(None) == {}
    assert not isinstance(object(), Index)


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_search_finds_self_and_reports_exact_scores(kind: str, data: np.ndarray, metric: str):
    index = built(kind, data, metric)
    queries = data[:20]
    ids, scores = index.search(queries, 5)
    assert ids.shape == scores.shape == (20, 5)
    assert ids.dtype == np.int64 and scores.dtype == np.float32
    assert (np.diff(scores, axis=1) <= 1e-5).all(), "scores must be sorted best first"
    truth = exact(data, queries, metric)
    for row in range(20):
        want = truth[row, ids[row] - 100]
        np.testing.assert_allclose(scores[row], want, rtol=1e-2, atol=1e-2)
    if metric != "ip":  # under ip a longer neighbour may outscore the query itself
        assert (ids[:, 0] == np.arange(20) + 100).mean() >= 0.95


def test_k_larger_than_count_pads_with_minus_one(kind: str, data: np.ndarray):
    index = built(kind, data[:30])
    ids, scores = index.search(data[:2], 50)
    assert ids.shape == (2, 50)
    assert (ids[:, 30:] == -1).all() and np.isneginf(scores[:, 30:]).all()
    assert set(ids[0, :30].tolist()) <= set(range(100, 130))


def test_empty_index_returns_only_padding(kind: str, data: np.ndarray, tmp_path: Path):
    index = make_index(kind, DIM)
    assert index.count == 0
    ids, scores = index.search(data[:3], 4)
    assert (ids == -1).all() and np.isneginf(scores).all()
    index.build(np.empty((0, DIM), np.float32), np.empty(0, np.int64))
    assert index.count == 0
    index.save(tmp_path / "empty")
    again = load_index(tmp_path / "empty")
    assert again.count == 0 and (again.search(data[:1], 2)[0] == -1).all()
    again.add(data[:50], np.arange(50))
    assert again.count == 50 and again.search(data[:1], 1)[0][0, 0] == 0


def test_wrong_dimension_names_both(kind: str, data: np.ndarray):
    index = built(kind, data[:100])
    wrong = np.ones((2, DIM + 3), np.float32)
    for call in (lambda: index.search(wrong, 3), lambda: index.add(wrong, np.array([1, 2]))):
        with pytest.raises(DimensionMismatch) as err:
            call()
        assert str(DIM + 3) in str(err.value) and str(DIM) in str(err.value)
        assert err.value.http_status == 409


def test_nan_and_infinite_vectors_are_refused(kind: str, data: np.ndarray):
    index = built(kind, data[:100])
    bad = data[:3].copy()
    bad[1, 4] = np.nan
    with pytest.raises(InvalidInput, match="NaN"):
        index.add(bad, np.array([1000, 1001, 1002]))
    bad[1, 4] = np.inf
    with pytest.raises(InvalidInput, match="rows \\[1\\]"):
        index.search(bad, 3)
    assert index.count == 100


def test_duplicate_ids_are_refused_and_upsert_replaces(kind: str, data: np.ndarray):
    index = built(kind, data[:100], offset=0)
    with pytest.raises(InvalidInput, match="duplicate"):
        index.add(data[:2], np.array([500, 500]))
    with pytest.raises(AlreadyExists) as err:
        index.add(data[:2], np.array([5, 600]))
    assert "upsert" in str(err.value) and index.count == 100
    index.upsert(data[50:51], np.array([5]))  # id 5 now holds vector 50's values
    assert index.count == 100
    ids, _ = index.search(data[50:51], 2)
    assert set(ids[0].tolist()) == {5, 50}


def test_bad_ids_and_k(kind: str, data: np.ndarray):
    index = built(kind, data[:50])
    for bad_ids in (np.array([-3, 1]), np.array([1.5, 2.0]), np.array([1])):
        with pytest.raises(InvalidInput):
            index.add(data[:2], bad_ids)
    for k in (0, -1, 2.5, True):
        with pytest.raises(InvalidInput, match="k must be"):
            index.search(data[:1], k)  # type: ignore[arg-type]


def test_remove_and_incremental_add(kind: str, data: np.ndarray):
    index = built(kind, data[:400], offset=0)
    gone = np.arange(0, 400, 3)
    assert index.remove(np.concatenate([gone, [9999]])) == len(gone)
    assert index.count == 400 - len(gone)
    assert index.remove(gone) == 0
    ids, _ = index.search(data[:400], 10)
    assert not np.isin(ids, gone).any()
    index.add(data[400:], np.arange(400, 600))
    assert index.count == 600 - len(gone)
    ids, _ = index.search(data[400:450], 1)
    assert (ids[:, 0] == np.arange(400, 450)).mean() >= 0.9
    index.add(data[[0, 3, 6]], np.array([0, 3, 6]))  # removed ids can come back
    assert index.search(data[3:4], 1)[0][0, 0] == 3


def test_save_load_round_trip(kind: str, data: np.ndarray, tmp_path: Path):
    index = built(kind, data, "l2")
    index.remove(np.arange(100, 130))
    before = index.search(data[:25], 7)
    index.save(tmp_path / "ix")
    again = load_index(tmp_path / "ix")
    assert (again.kind, again.metric, again.dim, again.count) == (kind, "l2", DIM, 570)
    assert again.params == index.params
    after = again.search(data[:25], 7)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_allclose(before[1], after[1], rtol=1e-5)
    again.add(data[:2], np.array([5000, 5001]))  # a loaded index stays writable
    assert again.count == 572


def test_params_round_trip_and_bad_params(kind: str):
    params = make_params(kind)
    assert type(params)(**asdict(params)) == params
    assert make_index(kind, DIM, "ip", asdict(params)).params == params
    with pytest.raises(InvalidInput, match="unknown"):
        make_index(kind, DIM, "cosine", {"no_such_knob": 1})
    with pytest.raises(InvalidInput, match="metric"):
        make_index(kind, DIM, "hamming")
    with pytest.raises(InvalidInput, match="dimension"):
        make_index(kind, 0)


def test_memory_is_reported(kind: str, data: np.ndarray):
    index = built(kind, data[:300])
    described = index.describe()
    assert described["count"] == 300 and described["kind"] == kind
    assert described["memory_bytes"] == index.memory_bytes() > 0

    def per_vector(name: str) -> float:
        small, large = built(name, data[:300]), built(name, data[:300])
        large.add(data[300:], np.arange(300, 600) + 1000)
        return (large.memory_bytes() - small.memory_bytes()) / 300

    if kind in ("ivfpq", "sq8", "rabitq"):  # codebooks are fixed costs; each added vector is small
        assert per_vector(kind) < per_vector("flat") / 2


def test_unknown_kind_is_a_clear_error():
    with pytest.raises(EmbedopsError, match="flat"):
        make_index("annoy", DIM)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_callers_arrays_are_never_modified(kind: str, data: np.ndarray, metric: str):
    vectors, queries = data[:200].copy(), data[200:210].copy()
    index = make_index(kind, DIM, metric)
    index.build(vectors, np.arange(200))
    index.search(queries, 3)
    np.testing.assert_array_equal(vectors, data[:200])
    np.testing.assert_array_equal(queries, data[200:210])


def test_search_params_unknown_or_out_of_range_are_refused(kind: str, data: np.ndarray):
    index = built(kind, data)
    with pytest.raises(InvalidInput, match="not a search parameter of the") as info:
        index.search(data[:2], 5, search_params={"bogus": 3})
    assert info.value.hint and kind in info.value.hint  # says what the backend accepts
    for name in index.search_knobs:
        low, _ = index.search_knobs[name]
        for bad in (low - 1, "8", True, 2.5):
            with pytest.raises(InvalidInput, match=name):
                index.search(data[:2], 5, search_params={name: bad})


def test_search_params_apply_to_one_call_only(kind: str, data: np.ndarray):
    """Per-call knobs change that search, never the index's own settings or later searches."""
    index = built(kind, data)
    queries = data[:50] + 0.3
    before = index.search(queries, 10)
    settings = asdict(index.params)
    knobs = {name: low for name, (low, _) in index.search_knobs.items()}  # the cheapest values
    index.search(queries, 10, search_params=knobs)
    after = index.search(queries, 10)
    assert asdict(index.params) == settings
    np.testing.assert_array_equal(before[0], after[0])


@pytest.mark.parametrize("kind", ["hnsw", "ivf", "ivfpq"])
def test_wider_search_params_raise_recall(kind: str):
    data = clustered(3000, seed=3)
    queries = data[::30] + np.random.default_rng(4).standard_normal((100, DIM)).astype(np.float32)
    index = make_index(kind, DIM, "cosine", {"nlist": 64} if kind != "hnsw" else {"M": 8})
    index.build(data, np.arange(len(data), dtype=np.int64))
    truth = np.argsort(-exact(data, queries, "cosine"), axis=1)[:, :10]

    def recall(params: dict) -> float:
        ids, _ = index.search(queries, 10, search_params=params)
        return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, truth, strict=True)]))

    knob = "ef_search" if kind == "hnsw" else "nprobe"
    narrow, wide = recall({knob: 1}), recall({knob: 256 if kind == "hnsw" else 64})
    assert narrow < wide, (narrow, wide)
    assert wide >= 0.95


@pytest.mark.parametrize("kind", ["sq8", "ivfpq", "rabitq"])
def test_rescore_factor_per_call(kind: str, data: np.ndarray):
    index = built(kind, data)
    queries = data[:30] + 0.2
    truth = np.argsort(-exact(data, queries, "cosine"), axis=1)[:, :10] + 100
    _, exact_scores = index.search(queries, 10)  # rescored: exact scores
    _, coded = index.search(queries, 10, search_params={"rescore_factor": 0})
    assert not np.allclose(exact_scores, coded, atol=1e-6)  # ranked by the codes alone
    ids, _ = index.search(queries, 10, search_params={"rescore_factor": 20})
    found = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, truth, strict=True)])
    assert found >= 0.95
    plain = make_index(kind, DIM, "cosine", {"rescore_factor": 0})
    plain.build(data, np.arange(len(data), dtype=np.int64))
    with pytest.raises(InvalidInput, match="cannot rescore"):
        plain.search(queries, 10, search_params={"rescore_factor": 4})


def test_search_params_with_tombstones_keep_skipping_removed_items(data: np.ndarray):
    index = built("hnsw", data)
    index.remove(np.arange(100, 110))
    ids, _ = index.search(data[:10], 5, search_params={"ef_search": 200})
    assert not np.isin(ids, np.arange(100, 110)).any()
    assert (ids[:, 0] >= 110).all()


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_results_faiss_cannot_fill_are_minus_one_with_minus_inf(data: np.ndarray, metric: str):
    """Probing one IVF cell finds fewer than k items: the rest are padding, whatever FAISS
    filled them with."""
    index = make_index("ivf", DIM, metric, {"nlist": 32})
    index.build(data, np.arange(len(data), dtype=np.int64))
    for queries in (data[:1], data[:7]):
        ids, scores = index.search(queries, 200, search_params={"nprobe": 1})
        missing = ids < 0
        assert missing.any() and (~missing).any()
        assert np.isneginf(scores[missing]).all()
        assert np.isfinite(scores[~missing]).all()


def test_remembered_search_params_do_not_admit_equal_values_of_other_types(data: np.ndarray):
    index = built("hnsw", data)
    index.search(data[:1], 5, search_params={"ef_search": 1})  # valid, remembered
    for bad in (True, 1.0):
        with pytest.raises(InvalidInput, match="ef_search"):
            index.search(data[:1], 5, search_params={"ef_search": bad})
