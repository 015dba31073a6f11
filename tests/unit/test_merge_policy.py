"""The size-tiered merge policy and the merge rate (issue 19): tiers of similar sizes merge, the
large base is left alone, an entry is rewritten a logarithmic number of times over many
refreshes; a paced build adds its chunks no faster than the rate (counted with an injected
clock: no timing assertions), and a throttled build equals an unthrottled one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from embedops.engine import consistency, segment_ops
from embedops.errors import InvalidInput
from embedops.index import make_index
from embedops.index.ivf import auto_nlist
from embedops.index.merge_policy import TIER_FANOUT, MergeRate, Throttle, merge_plan, tier
from embedops.index.segments import Segment, SegmentedIndex
from index_testing import one_faiss_thread  # noqa: F401 (autouse fixture)


@dataclass
class FakeIndex:
    """Just the sizes the policy reads."""

    count: int
    kind: str = "fake"
    search_knobs: dict[str, Any] = field(default_factory=dict)

    def ids(self) -> np.ndarray:
        return np.arange(self.count)


def layout(sizes: list[int], dead: dict[int, int] | None = None) -> list[Segment]:
    return [Segment(f"s{n:04d}", FakeIndex(size), size,  # type: ignore[arg-type]
                    dead=np.arange((dead or {}).get(n, 0)))
            for n, size in enumerate(sizes)]


def test_a_full_tier_merges_and_the_base_is_left_alone() -> None:
    index = layout([100_000, 1000, 900, 1000, 800, 200, 30])
    assert [tier(s) for s in (3, 4, 15, 16, 1000)] == [0, 1, 1, 2, 4]
    four = ["s0001", "s0002", "s0003", "s0004"]
    assert merge_plan(index, max_segments=5) == four
    assert merge_plan(index, max_segments=None) == four  # a refresh: tiers, no cap
    three = layout([100_000, 1000, 900, 1000, 30])
    assert merge_plan(three, None) == []
    assert merge_plan(three, None, incoming=700) == ["s0001", "s0002", "s0003"]  # + the new one
    assert merge_plan(three, None, incoming=70) == []


def test_small_exact_segments_fold_into_one_when_something_is_sealed() -> None:
    index = layout([100_000, 9000, 1500, 300])
    assert merge_plan(index, None, floor=2048) == []  # nothing sealed: nothing to do
    assert merge_plan(index, None, incoming=200, floor=2048) == ["s0002", "s0003"]
    assert merge_plan(index, None, incoming=200) == []


def test_over_the_count_the_smallest_join_and_worn_segments_always_merge() -> None:
    index = layout([100_000, 5000, 1000, 200, 30])  # one segment per tier
    assert merge_plan(index, max_segments=10) == []
    assert merge_plan(index, max_segments=3) == ["s0002", "s0003", "s0004"]
    assert merge_plan(index, max_segments=1) == ["s0000", "s0001", "s0002", "s0003", "s0004"]
    worn = layout([100_000, 5000], dead={1: 600})  # 12% tombstones
    assert merge_plan(worn, max_segments=10) == ["s0001"]
    assert merge_plan(worn, max_segments=None) == ["s0001"]
    assert merge_plan(worn, max_segments=None, worn=False) == []  # a refresh leaves it


@pytest.mark.parametrize("step", [500, 1000, 3000])
def test_successive_refreshes_rewrite_each_entry_a_logarithmic_number_of_times(step: int
                                                                                ) -> None:
    sizes, rewritten, refreshes, max_segments = [100_000], 0, 300, 10
    def seal(cap: int | None, incoming: int) -> int:
        nonlocal sizes
        chosen = {int(n[1:]) for n in merge_plan(layout(sizes), cap, incoming, cap is not None)}
        merged = sum(sizes[i] for i in chosen)
        sizes = [s for i, s in enumerate(sizes) if i not in chosen] + \
            ([merged + incoming] if merged + incoming else [])
        return merged

    for _ in range(refreshes):  # a refresh seals `step` new entries, merging full tiers
        rewritten += seal(None, step)
        if len(sizes) > max_segments:  # then the cap, as IndexManager.refresh does
            rewritten += seal(max_segments, 0)
        assert len(sizes) <= max_segments
    assert max(sizes) >= 100_000  # the base was never rewritten into a small segment
    assert rewritten / (refreshes * step) <= 5  # 3.2-4.1; "merge all but the largest": 13.3
    assert sum(1 for s in sizes if s < 2048) <= 2 * (TIER_FANOUT - 1)  # a short exact tail


class FakeClock:
    """A clock that moves only when slept on (or by ``work``)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.mark.parametrize("work_s", [0.0, 0.05, 0.5])  # the time one chunk takes to add
def test_the_throttle_never_runs_ahead_of_the_rate(work_s: float) -> None:
    clock = FakeClock()
    throttle = Throttle(MergeRate(vectors_per_s=1000, chunk=100), clock, clock.sleep)
    began, first, done = clock(), 100, 100
    chunks = []
    for start, stop in throttle.chunks(first, 1050):
        assert start == done  # contiguous, in order
        assert done <= 1000 * (clock() - began) + 1e-9  # never ahead of the rate
        chunks.append((start, stop))
        clock.now += work_s
        done = stop
    assert done == 1050 and len(chunks) == 10 and chunks[-1] == (1000, 1050)
    assert all(b - a <= 100 for a, b in chunks)
    if work_s < 0.1:  # faster than the rate: it slept before every chunk
        assert throttle.pauses == 10 and len(clock.sleeps) == 10
        assert throttle.slept == pytest.approx(0.1 + 9 * (0.1 - work_s))
    else:  # slower than the rate: it slept only for the first build's 100 vectors
        assert throttle.pauses == 1 and clock.sleeps == [pytest.approx(0.1)]


def test_unlimited_builds_in_one_go_and_the_rate_is_read_from_the_environment() -> None:
    clock = FakeClock()
    throttle = Throttle(MergeRate(), clock, clock.sleep)
    assert list(throttle.chunks(5, 25_000)) == [(5, 10_005), (10_005, 20_005), (20_005, 25_000)]
    assert clock.sleeps == []
    assert MergeRate.from_env({}) == MergeRate()
    rate = MergeRate.from_env({"EMBEDOPS_MERGE_RATE": "2500", "EMBEDOPS_MERGE_CHUNK": "64"})
    assert rate == MergeRate(2500.0, 64) and rate.limited
    for bad in ({"EMBEDOPS_MERGE_RATE": "fast"}, {"EMBEDOPS_MERGE_RATE": "-1"},
                {"EMBEDOPS_MERGE_CHUNK": "0"}):
        with pytest.raises(InvalidInput):
            MergeRate.from_env(bad)


@pytest.mark.parametrize("kind", ["hnsw", "rabitq", "flat"])
def test_a_throttled_build_holds_everything_and_trains_on_enough(kind: str) -> None:
    rng = np.random.default_rng(0)
    data = rng.standard_normal((6000, 16)).astype(np.float32)
    base_index = make_index(kind, 16, "cosine", {"nlist": 0} if kind == "rabitq" else None)
    base_index.build(data[:10], np.arange(10))
    base = SegmentedIndex([Segment("s", base_index, 10)], kind, "cosine", 16,
                          base_index.params)
    clock = FakeClock()
    throttle = Throttle(MergeRate(vectors_per_s=2000, chunk=500), clock, clock.sleep)
    built = segment_ops._build(base, data, throttle)
    assert built.count == 6000 and built.kind == kind
    first = max(500, 39 * auto_nlist(6000)) if kind == "rabitq" else 500
    starts = list(range(first, 6000, 500))  # the chunks added after the first build
    assert throttle.pauses == len(starts)
    assert clock.now - 1000.0 == pytest.approx(starts[-1] / 2000)  # the rate, to the chunk
    if kind == "rabitq":
        assert built.describe()["nlist"] == auto_nlist(6000)  # not the first chunk's
    ids, _ = built.search(data[:20], 1, {"nprobe": 1 << 10} if kind == "rabitq" else None)
    assert (ids[:, 0] == np.arange(20)).mean() >= 0.9


def test_the_checksum_follows_adds_and_removes() -> None:
    items = [f"doc-{i}" for i in range(500)]
    entry = consistency.record(items, "m@1")
    assert entry["checksum"].startswith("sum256:")
    new = consistency.updated(entry, ["doc-9", "new-1", "new-2"], ["doc-9", "doc-3"], "m@1")
    after = [i for i in items if i != "doc-3"] + ["new-1", "new-2"]
    assert new == consistency.record(after, "m@1")
    assert consistency.checksum(after, "m@1") != consistency.checksum(items, "m@1")
    older = {"count": 500, "checksum": consistency.checksum(items, "m@1", "sha256:")}
    assert older["checksum"].startswith("sha256:")
    assert consistency.updated(older, ["x"], [], "m@1") is None  # recomputed by the caller
    assert consistency.updated(None, ["x"], [], "m@1") is None
