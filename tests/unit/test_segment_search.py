"""Search over segments (issue 19): the fan-out is exact over exact segments whichever way a
segment is searched (its own index, or the tail's one matrix product), for every metric, with
tombstones; ``ef_search`` narrows with a graph's share of the entries; HNSW segments keep the
recall of one merged graph at the same knob."""

from __future__ import annotations

import numpy as np
import pytest

from embedops.errors import InvalidInput
from embedops.index import make_index
from embedops.index import segments as seg_mod
from embedops.index.segment_tail import CellSkip
from embedops.index.segments import Segment, SegmentedIndex, segment_knobs
from index_testing import one_faiss_thread  # noqa: F401 (autouse fixture)

DIM = 24


def clustered(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(7).standard_normal((12, DIM)) * 2
    return (centres[rng.integers(0, 12, n)] + rng.standard_normal((n, DIM))).astype(np.float32)


def segmented(kind: str, metric: str, sizes: list[int], dead_every: int = 0,
              params: dict | None = None) -> tuple[SegmentedIndex, np.ndarray, np.ndarray]:
    """An index of ``sizes`` segments of ``kind``; every ``dead_every``-th entry tombstoned.
    Returns it, all the rows (by global id) and the mask of live global ids."""
    segs, rows = [], []
    for n, size in enumerate(sizes):
        data = clustered(size, seed=n)
        index = make_index(kind, DIM, metric, params)
        index.build(data, np.arange(size))
        dead = np.arange(n, size, dead_every) if dead_every else np.empty(0, np.int64)
        segs.append(Segment(f"seg-20260101T000000{n:06d}Z-00000{n}", index, size, dead=dead))
        rows.append(data)
    out = SegmentedIndex(segs, kind, metric, DIM, None)
    live = np.ones(sum(sizes), bool)
    for seg in out.segments:
        live[seg.offset + seg.dead] = False
    return out, np.concatenate(rows), live


def exact(rows: np.ndarray, live: np.ndarray, queries: np.ndarray, metric: str, k: int
          ) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force top ``k`` (global ids, scores) over the live rows."""
    x = rows.astype(np.float64)
    q = queries.astype(np.float64)
    if metric == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    scores = q @ x.T
    if metric == "l2":
        scores = 2 * scores - (q * q).sum(1)[:, None] - (x * x).sum(1)[None, :]
    scores[:, ~live] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
@pytest.mark.parametrize(("tail_rows", "threads"),  # each segment by its own index / the tail,
                         [(0, 0), (10_000, 0), (0, 2), (500, 2)])  # on a pool of threads or not
def test_fan_out_over_exact_segments_is_exact(metric: str, tail_rows: int, threads: int,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seg_mod, "TAIL_ROWS", tail_rows)
    monkeypatch.setattr(seg_mod, "FANOUT_THREADS", threads)
    index, rows, live = segmented("flat", metric, [900, 120, 60, 7], dead_every=5)
    assert (index._tail is not None) == bool(tail_rows)
    queries = clustered(30, seed=99)
    for k in (1, 10, 65):
        ids, scores = index.search(queries, k)
        want_ids, want_scores = exact(rows, live, queries, metric, k)
        np.testing.assert_allclose(scores, want_scores, rtol=1e-4, atol=1e-4)
        assert (ids == want_ids).mean() > 0.99  # ties aside, the same ids
        assert live[ids].all()
    one = index.search(queries[:1], 10)  # the one-query path a server takes
    np.testing.assert_allclose(one[1], index.search(queries, 10)[1][:1], rtol=1e-4, atol=1e-4)


def test_more_results_than_live_entries_are_padded() -> None:
    index, _, live = segmented("flat", "cosine", [5, 3], dead_every=2)
    ids, scores = index.search(clustered(2, seed=5), 10)
    assert (ids[:, :live.sum()] >= 0).all() and (ids[:, live.sum():] == -1).all()
    assert np.isneginf(scores[:, live.sum():]).all()


@pytest.mark.parametrize("skip", [True, False], ids=["selector", "fetch"])
def test_a_cell_search_short_of_k_does_not_grow_its_fetch_to_the_segment(
        skip: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    # nprobe 1 of 64 cells: many rows find fewer than k live results, however much is fetched.
    # With the selector (CellSkip) FAISS skips the tombstones and is asked for k; without it
    # (a cell index whose labels are not its rows) the fetch pads for them
    if not skip:
        monkeypatch.setattr(CellSkip, "of", classmethod(lambda cls, seg: None))
    index, rows, live = segmented("ivf", "cosine", [3000, 3000], dead_every=3,
                                  params={"nlist": 64, "nprobe": 1})
    asked: list[int] = []
    for seg in index.segments:
        for name in ("_search", "search_selected"):
            search = getattr(seg.index, name)

            def spy(q: np.ndarray, k: int, *rest: object, search: object = search) -> object:
                asked.append(k)
                return search(q, k, *rest)  # type: ignore[operator]

            setattr(seg.index, name, spy)
    queries = clustered(50, seed=9)
    ids, _ = index.search(queries, 10, {"nprobe": 1})
    assert max(asked) < 100  # it was the whole segment (3,000) per query
    assert max(asked) == 10 if skip else max(asked) > 10  # k; k plus the tombstones expected
    assert (ids[:, 0] >= 0).all() and live[ids[ids >= 0]].all()  # only live results
    full, _ = index.search(queries, 10, {"nprobe": 64})  # every cell: exact, so full rows
    want, _ = exact(rows, live, queries, "cosine", 10)
    assert np.mean([len(set(a) & set(b)) for a, b in zip(full, want, strict=True)]) >= 9.9


@pytest.mark.parametrize("metric", ["cosine", "l2"])
@pytest.mark.parametrize("kind", ["ivf", "rabitq", "ivfpq"])
def test_cell_segments_skip_their_tombstones_inside_faiss(kind: str, metric: str) -> None:
    # every cell probed: ivf is exact, the compressed kinds rescore live candidates only
    params = {"nlist": 16, "nprobe": 16}
    if kind != "ivf":
        params["rescore_factor"] = 30
    index, rows, live = segmented(kind, metric, [2500, 2500], dead_every=4, params=params)
    assert len(index._skips) == 2  # a selector per segment with tombstones
    before = index.memory_bytes()
    queries = clustered(40, seed=11)
    for k in (1, 10):
        ids, scores = index.search(queries, k)
        assert (ids >= 0).all() and live[ids].all()  # k live results in every row
        want, _ = exact(rows, live, queries, metric, k)
        recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(ids, want, strict=True)])
        assert recall >= (0.99 if kind == "ivf" else 0.9)
    one, one_scores = index.search(queries[:1], 10)  # the one-query path alike
    np.testing.assert_array_equal(one, index.search(queries, 10)[0][:1])
    assert index.memory_bytes() == before  # the bitmaps were counted from the start
    bare, _, _ = segmented(kind, metric, [2500, 2500], params=params)
    assert before - bare.memory_bytes() == 2 * -(-2500 // 8)  # one bit an entry


def test_ef_search_narrows_with_the_share_of_entries() -> None:
    graph = make_index("hnsw", DIM, "cosine", {"ef_search": 64})
    graph.build(clustered(50, 1), np.arange(50))
    seg = Segment("seg-20260101T000000000000Z-000000", graph, 50)
    assert segment_knobs(seg, None, 1.0) is None  # one segment: the graph's own
    assert segment_knobs(seg, None, 0.25) == {"ef_search": 32}  # 64 * 0.25 ** 0.5
    assert segment_knobs(seg, {"ef_search": 100}, 0.25) == {"ef_search": 50}
    assert segment_knobs(seg, {"ef_search": 16}, 0.0001) == {"ef_search": seg_mod.MIN_EF}
    assert segment_knobs(seg, {"ef_search": "x"}, 0.5) == {"ef_search": "x"}  # refused later
    flat = make_index("flat", DIM)
    assert segment_knobs(Segment(seg.name, flat, 0), {"ef_search": 64}, 0.5) is None


def test_hnsw_segments_keep_the_recall_of_one_graph_at_the_same_knob() -> None:
    sizes = [1500] * 6
    index, rows, live = segmented("hnsw", "cosine", sizes, params={"M": 16})
    merged = make_index("hnsw", DIM, "cosine", {"M": 16})
    merged.build(rows, np.arange(len(rows)))
    queries = clustered(100, seed=42)
    truth = exact(rows, live, queries, "cosine", 10)[0]

    def recall(ids: np.ndarray) -> float:
        return float(np.mean([len(set(a) & set(b)) for a, b in zip(ids, truth, strict=True)]))

    for ef in (16, 48):
        knob = {"ef_search": ef}
        got = recall(index.search(queries, 10, knob)[0])
        assert got >= recall(merged.search(queries, 10, knob)[0]) - 0.3  # of 10 per query
    with pytest.raises(InvalidInput, match="ef_search"):
        index.search(queries, 10, {"ef_search": 0})


def mixed(metric: str, sizes: list[int], dead_every: int) -> tuple[SegmentedIndex, np.ndarray,
                                                                   np.ndarray]:
    """HNSW segments (each searched as a lane, tombstones skipped by a selector) followed by
    one flat segment (the tail, or searched through its backend when TAIL_ROWS is 0)."""
    segs, rows = [], []
    for n, size in enumerate(sizes):
        data = clustered(size, seed=10 + n)
        kind = "flat" if n == len(sizes) - 1 else "hnsw"
        index = make_index(kind, DIM, metric, {"M": 16} if kind == "hnsw" else None)
        index.build(data, np.arange(size))
        dead = np.arange(n, size, dead_every) if dead_every else np.empty(0, np.int64)
        segs.append(Segment(f"seg-20260101T000001{n:06d}Z-00000{n}", index, size, dead=dead))
        rows.append(data)
    out = SegmentedIndex(segs, "hnsw", metric, DIM, None)
    live = np.ones(sum(sizes), bool)
    for seg in out.segments:
        live[seg.offset + seg.dead] = False
    return out, np.concatenate(rows), live


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
@pytest.mark.parametrize(("tail_rows", "threads"), [(10_000, 0), (0, 0), (10_000, 2)])
def test_graph_lanes_with_tombstones_match_brute_force(metric: str, tail_rows: int,
                                                       threads: int,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # a beam wider than these small graphs: each graph's search is exact, so the merge is
    monkeypatch.setattr(seg_mod, "TAIL_ROWS", tail_rows)
    monkeypatch.setattr(seg_mod, "FANOUT_THREADS", threads)
    index, rows, live = mixed(metric, [400, 250, 90, 40], dead_every=4)
    assert all(graph is not None for _, _, graph in index._graphs[:3])  # searched as lanes
    queries = clustered(25, seed=77)
    knob = {"ef_search": 512}
    for k in (1, 10, 40):
        ids, scores = index.search(queries, k, knob)
        want_ids, want_scores = exact(rows, live, queries, metric, k)
        np.testing.assert_allclose(scores, want_scores, rtol=1e-4, atol=1e-4)
        assert (ids == want_ids).mean() > 0.99
        assert live[ids].all()
        for row in (0, 7):  # one query a call: the same as its row of the batch
            one_ids, one_scores = index.search(queries[row:row + 1], k, knob)
            np.testing.assert_array_equal(one_ids[0], ids[row])
            np.testing.assert_allclose(one_scores[0], scores[row], rtol=1e-6)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_graph_lanes_pad_when_fewer_live_than_k(metric: str) -> None:
    index, _, live = mixed(metric, [30, 20, 6], dead_every=2)
    n_live = int(live.sum())
    for queries in (clustered(3, seed=8), clustered(1, seed=9)):
        ids, scores = index.search(queries, n_live + 5, {"ef_search": 256})
        assert ids.shape == (len(queries), n_live + 5)
        assert (ids[:, n_live:] == -1).all() and np.isneginf(scores[:, n_live:]).all()
        assert np.isfinite(scores[:, :n_live]).all()
        assert all(set(row[:n_live]) == set(np.flatnonzero(live)) for row in ids)


def test_one_graph_segment_answers_as_the_graph_itself() -> None:
    graph = make_index("hnsw", DIM, "cosine", {"M": 16})
    data = clustered(300, seed=3)
    graph.build(data, np.arange(300))
    index = SegmentedIndex([Segment("seg-20260101T000000000000Z-000000", graph, 300)],
                           "hnsw", "cosine", DIM, None)
    queries = clustered(12, seed=4)
    for knob in (None, {"ef_search": 12}):
        got, want = index.search(queries, 10, knob), graph.search(queries, 10, knob)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_allclose(got[1], want[1], rtol=1e-6)


def test_a_graph_whose_labels_are_not_its_local_ids_is_searched_through_its_backend() -> None:
    data = clustered(200, seed=5)
    graph = make_index("hnsw", DIM, "cosine", {"M": 16})
    order = np.random.default_rng(0).permutation(200)
    graph.build(data[order], order)  # label i holds local id order[i]
    seg = Segment("seg-20260101T000000000000Z-000000", graph, 200, dead=np.arange(0, 200, 3))
    flat = make_index("flat", DIM, "cosine")
    flat.build(clustered(30, seed=6), np.arange(30))
    index = SegmentedIndex([seg, Segment("seg-20260101T000000000001Z-000001", flat, 30)],
                           "hnsw", "cosine", DIM, None)
    assert index._graphs[0][2] is None  # not a lane
    live = np.ones(230, bool)
    live[np.arange(0, 200, 3)] = False
    rows = np.concatenate([data, flat._index.reconstruct_n(0, 30)])  # type: ignore[attr-defined]
    queries = clustered(10, seed=7)
    ids, scores = index.search(queries, 10, {"ef_search": 256})
    want_ids, want_scores = exact(rows, live, queries, "cosine", 10)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-4, atol=1e-4)
    assert live[ids].all()


def test_a_graph_with_its_own_tombstones_skips_them_and_the_segment_s() -> None:
    # an unsegmented snapshot's graph read as one segment (as_segments) may hold removed nodes
    data = clustered(300, seed=11)
    graph = make_index("hnsw", DIM, "cosine", {"M": 16})
    graph.build(data, np.arange(300))
    removed = np.arange(0, 300, 7)
    graph.remove(removed)  # under the rebuild fraction: tombstones inside the graph
    assert graph.tombstones == len(removed)  # type: ignore[attr-defined]
    seg = Segment("seg-20260101T000000000000Z-000000", graph, 300, dead=np.arange(1, 300, 5))
    index = SegmentedIndex([seg], "hnsw", "cosine", DIM, None)
    assert index._graphs[0][2] is not None  # still a lane: labels are local ids
    live = np.ones(300, bool)
    live[removed] = live[seg.dead] = False
    queries = clustered(20, seed=12)
    ids, scores = index.search(queries, 10, {"ef_search": 300})
    want_ids, want_scores = exact(data, live, queries, "cosine", 10)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-4, atol=1e-4)
    assert live[ids].all()


def test_a_knob_value_of_the_wrong_type_is_refused_even_after_an_equal_valid_one() -> None:
    index, _, _ = segmented("hnsw", "cosine", [300, 200], params={"M": 16})
    queries = clustered(2, seed=1)
    index.search(queries, 5, {"ef_search": 2})
    for bad in (2.0, True):
        with pytest.raises(InvalidInput, match="ef_search"):
            index.search(queries, 5, {"ef_search": bad})


def test_pool_threads_run_faiss_on_one_openmp_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    # OpenMP's thread count is per thread: a new thread starts from OMP_NUM_THREADS (1 under
    # this suite's conftest, the core count in a server), not from what its creator set
    import threading

    import faiss

    monkeypatch.setattr(seg_mod, "FANOUT_THREADS", 2)
    monkeypatch.setattr(seg_mod, "_POOL", None)
    pool = seg_mod._executor()
    seen: list[int] = []

    def fresh_thread() -> None:
        faiss.omp_set_num_threads(3)  # as a new thread on a 3-core machine starts
        pool._initializer()  # type: ignore[attr-defined]  # what each pool thread runs first
        seen.append(faiss.omp_get_max_threads())

    try:
        thread = threading.Thread(target=fresh_thread)
        thread.start()
        thread.join()
        assert seen == [1]
        assert pool.submit(faiss.omp_get_max_threads).result() == 1
    finally:
        pool.shutdown()
