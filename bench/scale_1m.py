"""Segmented snapshots at scale (issue 19, item 5, the segment part): embedops vs raw FAISS.

Data: synthetic clustered vectors (gaussian topics, unit length, ``--dim`` 128), not model
vectors: the point is the index, and 1M MiniLM encodings do not fit a 2-core machine's hour.
The items go through the real engine (catalog, snapshots, served index) with their vectors
given (``upsert_items(vectors=...)``), under a random static model of the same dimension.

Measured in one run, one FAISS thread, with the load average printed beside each figure:

* full build: ``index build --kind hnsw`` of ``--n`` vectors (catalog read, build, checksummed
  snapshot); after the refreshes, ``index merge`` (a full build over the live vectors) next to
  raw FAISS ``IndexHNSWFlat`` (same ``M`` and ``efConstruction``) on the same array, builds on
  ``--build-threads`` FAISS threads on both sides; the memory per live vector of the merged
  index (``index status``) and of raw FAISS's;
* refresh: ``--new-share`` (1%) new vectors written, then ``index refresh`` (a new segment
  from those only, the rest hard-linked); then deleting 1% and refreshing again; each as a
  share of the full build; then more 1% refreshes (``--refreshes`` in all) under the
  size-tiered policy (``max_segments`` = ``--segments``): the layout it really produces;
* QPS at recall@10 >= ``--target`` (0.95) against exact search, at the cheapest
  ``ef_search`` reaching it (recall found untimed; the knob is the whole index's: segments
  narrow it to their share): (a) through the served index, one query at a time, as a server
  searches; (b) at the index, one query per call and (c) a batch of all queries per call; for
  the policy's layout, after ``index merge`` (one segment), for ``--segments`` equal HNSW
  segments of the same live vectors (index level), each also with the segments searched on
  a pool of 2 threads, and raw FAISS HNSW on the same live vectors. The contestants of a mode
  are timed in ``--rounds`` interleaved rounds (shuffled order); the ratio printed is the
  median over rounds of a contestant's QPS over merged's in the same round, since the load of
  a shared machine moves between rounds;
* the refresh bookkeeping at ``--keymap-n`` keys: the consistency checksum from scratch and
  updated by the write, and the served index's key map (what still grows with the collection).

One query per call, each contestant's p50 / p99 latency over one more pass. Beside each
contestant's recall and QPS: its HNSW distance computations per query at that
``ef_search`` (FAISS's counters, one untimed pass), the work it does whatever the load.

``--layouts`` (index level, no engine): the layout the size-tiered policy holds when it first
holds ``--segments`` segments, simulated with the engine's own ``merge_plan`` calls from a
``--n`` base and refreshes of ``--new-share`` (e.g. 50,000 + 500s: 50k, 2 x 38.5k, 3 x 9.5k,
3 x 2.5k hnsw and a 500 flat tail, 163.5k vectors), ``--segments`` equal hnsw segments and one
merged hnsw index over the same vectors, one query a call and batched, with and without a
pool of 2 threads.

Usage: ``python bench/scale_1m.py [--n 1000000] [--dim 128] [--queries 500]``; ``--n 50000``
for a quick run; ``--layouts --n 50000`` for the 10-segment layouts. Figures are only
meaningful on an idle machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from embedops.config import Workspace
from embedops.engine import Embedops
from embedops.models.registry import Registry
from embedops.models.static import StaticVectors, publish_static
from embedops.text.tokenize import TokenizerSpec

#: the ef_search grid (steps of 2 where the layouts meet the target: equal recall within ~0.005)
EF = (*range(4, 34, 2), 36, 40, 44, 48, 56, 64, 72, 80, 96, 112, 128, 160, 192, 256, 384, 512)
M, EF_CONSTRUCTION = 32, 100
BATCH = 10_000  # the most items one upsert takes


def policy_sizes(base: int, step: int, refreshes: int, max_segments: int) -> tuple[int, list[int]]:
    """The live sizes the size-tiered policy holds when it first holds the most segments over
    ``refreshes`` refreshes of ``step`` new vectors into a ``base`` segment, simulated with the
    engine's own choices (``merge_plan`` as ``segment_ops.seal`` calls it: tiers at each
    refresh, the policy past ``max_segments``, the exact-build floor); and that refresh's
    number. No deletes: the sizes are live entries."""
    from embedops.engine.segment_ops import _EXACT_BELOW
    from embedops.index.merge_policy import merge_plan
    from embedops.index.segments import Segment

    class Sized:  # merge_plan reads a segment's entry count only
        def __init__(self, n: int) -> None:
            self.count = n

    made = 0

    def seg(n: int) -> Segment:
        nonlocal made
        made += 1
        return Segment(f"s{made:06d}", Sized(n), n)  # type: ignore[arg-type]

    def fold(segs: list[Segment], chosen: set[str], extra: int) -> list[Segment]:
        new = sum(x.live for x in segs if x.name in chosen) + extra
        return [x for x in segs if x.name not in chosen] + [seg(new)]

    segs, best = [seg(base)], (0, [base])
    for r in range(1, refreshes + 1):
        segs = fold(segs, set(merge_plan(segs, None, step, worn=False, floor=_EXACT_BELOW)), step)
        if len(segs) > max_segments:
            segs = fold(segs, set(merge_plan(segs, max_segments, 0, floor=_EXACT_BELOW)), 0)
        if len(segs) > len(best[1]):
            best = (r, [x.live for x in segs])
    return best


def build_layout(live: np.ndarray, sizes: list[int]) -> Any:
    """Segments of ``sizes`` over consecutive rows of ``live``, each built as the engine builds
    a segment (hnsw, exact flat under ``segment_ops._EXACT_BELOW``), as one SegmentedIndex."""
    from embedops.engine.segment_ops import _EXACT_BELOW
    from embedops.index import make_index
    from embedops.index.segments import Segment, SegmentedIndex, new_segment_name

    segs, at = [], 0
    for size in sizes:
        rows = live[at:at + size]
        at += size
        kind = "hnsw" if size >= _EXACT_BELOW else "flat"
        index = make_index(kind, live.shape[1], "cosine",
                           {"M": M, "ef_construction": EF_CONSTRUCTION} if kind == "hnsw" else None)
        index.build(rows, np.arange(len(rows)))
        segs.append(Segment(new_segment_name(), index, len(rows)))
    params = make_hnsw_params()
    return SegmentedIndex(segs, "hnsw", "cosine", live.shape[1], params)


def make_hnsw_params() -> Any:
    """The hnsw parameters every layout is built with."""
    from embedops.index import make_params

    return make_params("hnsw", {"M": M, "ef_construction": EF_CONSTRUCTION})


def clustered(n: int, dim: int, seed: int, topics: int) -> np.ndarray:
    """``n`` unit vectors around ``topics`` gaussian centres (the same centres for a dim)."""
    centers = np.random.default_rng(dim).standard_normal((topics, dim)).astype(np.float32) * 2
    rng = np.random.default_rng(seed)
    x = centers[rng.integers(0, topics, n)] + rng.standard_normal((n, dim), np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call."""
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def workspace(home: Path, dim: int) -> Workspace:
    """A workspace with a random static model ``rand`` of dimension ``dim``."""
    ws = Workspace(home).ensure()
    words = [f"w{i}" for i in range(64)]
    table = StaticVectors(words, np.random.default_rng(1).standard_normal(
        (len(words), dim)).astype(np.float32))
    publish_static(Registry(ws), "rand", table, kind="word2vec", spec=TokenizerSpec())
    return ws


def write(api: Embedops, ids: list[str], vectors: np.ndarray) -> None:
    """Upsert items ``ids`` with their vectors, in batches."""
    for start in range(0, len(ids), BATCH):
        part = ids[start:start + BATCH]
        api.upsert_items("big", [{"id": i, "text": i} for i in part],
                         vectors=vectors[start:start + len(part)])


def load() -> str:
    """The 1-minute load average, for the record beside a timing."""
    return f"{os.getloadavg()[0]:.2f}"


def reach(search: Callable[[dict[str, int]], list[set[Any]]], truth: list[set[Any]],
          target: float) -> dict[str, Any]:
    """The cheapest ``ef_search`` whose recall@10 reaches ``target`` (recall only, untimed):
    ``search(knobs)`` returns each query's top-10 as a set."""
    out: dict[str, Any] = {"ef": None, "recall": 0.0}
    for ef in EF:
        found = search({"ef_search": ef})
        rec = float(np.mean([len(f & t) / 10 for f, t in zip(found, truth, strict=True)]))
        out = {"ef": ef if rec >= target else None, "recall": rec}
        if rec >= target:
            return out
    out["ef"] = EF[-1]
    return out


def race(contestants: dict[str, Callable[[], Any]], count: int, rounds: int,
         reference: str) -> dict[str, dict[str, float]]:
    """QPS of each contestant (a call searching ``count`` queries) over ``rounds`` rounds in a
    shuffled order each round; best QPS, and the median over rounds of its QPS over the
    ``reference``'s in the same round (neighbours in a round share the machine's load). Also
    queries per CPU second of the process (every thread, a pool's too): the work, which a
    loaded machine's scheduling moves far less than the wall clock (``cpu_ratio``, the same
    median of same-round ratios)."""
    import random

    rng = random.Random(0)
    names = list(contestants)
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        rng.shuffle(names)
        for name in names:
            started = time.process_time()
            seconds, _ = timed(contestants[name])
            wall[name].append(count / seconds)
            cpu[name].append(count / max(time.process_time() - started, 1e-9))

    def ratio(per: dict[str, list[float]], name: str) -> float:
        return float(np.median([a / b for a, b in zip(per[name], per[reference], strict=True)]))

    return {name: {"qps": max(wall[name]), "ratio": ratio(wall, name),
                   "cpu_qps": max(cpu[name]), "cpu_ratio": ratio(cpu, name)} for name in names}


def distances(search: Callable[[dict[str, int]], Any], knobs: dict[str, int], n: int) -> float:
    """HNSW distance computations per query of one untimed pass (FAISS's counters): the
    work a contestant does whatever the machine's load (an exact tail's rows not counted)."""
    stats = faiss.cvar.hnsw_stats
    stats.reset()
    search(knobs)
    return float(stats.ndis / n)


class OneByOne:
    """A search of all ``queries`` one query per call (``one(query, knobs)`` gives a top-10
    set); ``latencies`` times each call of one pass (p50 / p99)."""

    def __init__(self, one: Callable[[np.ndarray, dict[str, int]], set[Any]],
                 queries: np.ndarray) -> None:
        self.one, self.queries = one, queries

    def __call__(self, knobs: dict[str, int]) -> list[set[Any]]:
        return [self.one(q, knobs) for q in self.queries]

    def latencies(self, knobs: dict[str, int]) -> dict[str, float]:
        took = []
        for q in self.queries:
            started = time.perf_counter()
            self.one(q, knobs)
            took.append(time.perf_counter() - started)
        ms = 1000 * np.asarray(took)
        return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def served_search(served: Any, queries: np.ndarray) -> OneByOne:
    """One query at a time through a served index (what a server does)."""
    return OneByOne(lambda q, knobs: {i for i, _ in served.search(q, 10, search_params=knobs)},
                    queries)


def index_search(index: Any, queries: np.ndarray, batch: bool
                 ) -> Callable[[dict[str, int]], list[set[Any]]]:
    """The index's own search (global ids), all queries in one call or one per call."""
    if batch:
        return lambda knobs: [set(row.tolist()) for row in index.search(queries, 10, knobs)[0]]
    return OneByOne(lambda q, knobs: set(index.search(q[None, :], 10, knobs)[0][0].tolist()),
                    queries)


def faiss_search(index: Any, queries: np.ndarray) -> OneByOne:
    """Raw FAISS HNSW, one query per call."""
    def one(q: np.ndarray, knobs: dict[str, int]) -> set[Any]:
        index.hnsw.efSearch = knobs["ef_search"]
        return set(index.search(q[None, :], 10)[1][0].tolist())
    return OneByOne(one, queries)


@contextlib.contextmanager
def fan_out_threads(n: int) -> Iterator[None]:
    """Search segments on a pool of ``n`` threads meanwhile (``segments.FANOUT_THREADS``)."""
    from embedops.index import segments

    before, segments.FANOUT_THREADS = segments.FANOUT_THREADS, n
    try:
        yield
    finally:
        segments.FANOUT_THREADS = before


def equal_segments(live: np.ndarray, parts: int) -> Any:
    """``parts`` HNSW segments of (nearly) equal size over ``live``, as one SegmentedIndex."""
    from embedops.index import make_index
    from embedops.index.segments import Segment, SegmentedIndex, new_segment_name

    segs = []
    for rows in np.array_split(live, parts):
        index = make_index("hnsw", live.shape[1], "cosine",
                           {"M": M, "ef_construction": EF_CONSTRUCTION})
        index.build(rows, np.arange(len(rows)))
        segs.append(Segment(new_segment_name(), index, len(rows)))
    first = segs[0].index
    return SegmentedIndex(segs, "hnsw", "cosine", live.shape[1], first.params)  # type: ignore[attr-defined]


def exact_truth(ids: list[str], vectors: np.ndarray, queries: np.ndarray
                ) -> tuple[list[set[str]], np.ndarray]:
    """Exact top-10 of each query (as item-id sets, and as row numbers)."""
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    rows = flat.search(queries, 10)[1]
    return [{ids[j] for j in row} for row in rows], rows


def bookkeeping(n: int, share: float) -> dict[str, float]:
    """Seconds of the per-refresh work that is not index building, at ``n`` keys and a write
    of ``share`` of them: the consistency checksum from scratch (before) and updated by the
    write (now), the kept keys joined, and the served index's key map (still O(n))."""
    from embedops.engine import consistency
    from embedops.engine.segment_ops import _kept_keys
    from embedops.index.segments import Segment
    from embedops.search.served import ServedIndex

    keys = [f"item-{i}" for i in range(n)]
    write = keys[: max(1, int(n * share))]
    entry = consistency.record(keys, "m@1")
    out = {"n": n, "write": len(write)}
    out["checksum_from_scratch_s"], _ = timed(lambda: consistency.record(keys, "m@1"))
    out["checksum_updated_s"], _ = timed(lambda: consistency.updated(entry, write, write, "m@1"))
    seg = Segment("s", None, n)  # type: ignore[arg-type]  # only offsets are read
    out["kept_keys_s"], _ = timed(lambda: _kept_keys(keys, [seg]))

    class Stub:
        count, dim, metric = n, 4, "cosine"

    out["served_key_map_s"], _ = timed(lambda: ServedIndex(Stub(), keys, {"dim": 4}))  # type: ignore[arg-type]
    return out


def memory(api: Embedops, raw: Any, live: int, dim: int) -> dict[str, float]:
    """Bytes per live vector: the served merged index as ``index status`` reports it (FAISS
    index, key map, tombstones), raw FAISS's index (its serialized size: the graph and the
    vectors it holds in RAM), and flat fp32 for scale."""
    served = api.index_status("big")["served"]
    return {"embedops_per_vector": served["memory_bytes"] / live,
            "faiss_per_vector": len(faiss.serialize_index(raw)) / live,
            "flat_fp32_per_vector": 4.0 * dim}


def global_truth(served: Any, truth_ids: list[set[str]]) -> list[set[int]]:
    """The exact top-10 as the global ids of ``served``'s index (positions in its keys)."""
    pos = {k: i for i, k in enumerate(served.keys) if i not in served.masked}
    return [{pos[i] for i in t} for t in truth_ids]


def measure(args: argparse.Namespace, queries: np.ndarray, truth_ids: list[set[str]],
            truth_rows: np.ndarray, policy: Any, merged: Any, equal: Any, raw: Any
            ) -> dict[str, Any]:
    """Per mode, the cheapest ``ef_search`` reaching the target for each layout (recall,
    untimed), then all of them timed in interleaved rounds: QPS and the ratio to merged."""
    rows = [set(r.tolist()) for r in truth_rows]
    seg_truth, merged_truth = global_truth(policy, truth_ids), global_truth(merged, truth_ids)
    n = len(queries)
    modes: dict[str, dict[str, tuple[Callable[..., Any], list[set[Any]], int]]] = {
        "served": {"merged": (served_search(merged, queries), truth_ids, 1),
                   "policy": (served_search(policy, queries), truth_ids, 1),
                   "policy_pool2": (served_search(policy, queries), truth_ids, 2)},
        "single": {"merged": (index_search(merged.index, queries, False), merged_truth, 1),
                   "policy": (index_search(policy.index, queries, False), seg_truth, 1),
                   "policy_pool2": (index_search(policy.index, queries, False), seg_truth, 2),
                   "equal": (index_search(equal, queries, False), rows, 1),
                   "equal_pool2": (index_search(equal, queries, False), rows, 2),
                   "faiss": (faiss_search(raw, queries), rows, 1)},
        "batch": {"merged": (index_search(merged.index, queries, True), merged_truth, 1),
                  "policy": (index_search(policy.index, queries, True), seg_truth, 1),
                  "equal": (index_search(equal, queries, True), rows, 1),
                  "equal_pool2": (index_search(equal, queries, True), rows, 2)},
    }
    return compete(modes, args, n)


Modes = dict[str, dict[str, tuple[Callable[..., Any], list[set[Any]], int]]]


def compete(modes: Modes, args: argparse.Namespace, n: int) -> dict[str, Any]:
    """Per mode, each contestant's cheapest ``ef_search`` reaching the target (recall and the
    graph distance computations per query, untimed), then all timed in interleaved rounds."""
    out: dict[str, Any] = {}
    for mode, entries in modes.items():
        found, calls = {}, {}
        for name, (search, truth, threads) in entries.items():
            with fan_out_threads(threads):
                found[name] = reach(search, truth, args.target)
            knobs = {"ef_search": found[name]["ef"]}
            found[name]["ndis"] = distances(search, knobs, n)

            def call(search: Any = search, knobs: dict[str, int] = knobs,
                     threads: int = threads) -> Any:
                with fan_out_threads(threads):
                    return search(knobs)

            calls[name] = call
        timing = race(calls, n, args.rounds, "merged")
        for name, (search, _, threads) in entries.items():
            if isinstance(search, OneByOne):  # one untimed-by-race pass: each query's latency
                with fan_out_threads(threads):
                    timing[name].update(search.latencies({"ef_search": found[name]["ef"]}))
        out[mode] = {name: {**found[name], **timing[name]} for name in entries}
        out[mode]["load"] = load()
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    from threadpoolctl import threadpool_limits

    faiss.omp_set_num_threads(args.build_threads)  # builds (both sides alike); searches: 1
    threadpool_limits(1)  # numpy's BLAS: one thread everywhere, as in a server worker
    n, dim, topics = args.n, args.dim, max(16, args.n // 500)
    base = clustered(n, dim, 0, topics)
    queries = clustered(args.queries, dim, 9, topics)
    ids = [f"i{i}" for i in range(n)]
    step = max(1, int(n * args.new_share))
    report: dict[str, Any] = {"n": n, "dim": dim, "data": "synthetic clustered, unit length",
                              "load_start": load()}
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp, \
            Embedops(workspace(Path(tmp) / "ws", dim)) as api:
        api.collections.create("big", model="rand")
        report["ingest_s"], _ = timed(lambda: write(api, ids, base))
        report["build_s"], _ = timed(lambda: api.build_index(
            "big", "hnsw", {"M": M, "ef_construction": EF_CONSTRUCTION}, quiet=True))
        report["load_build"] = load()
        api.served_index("big")  # loaded, as a server holds it
        live_ids, live = list(ids), base
        refresh_s = []
        for r in range(args.refreshes):
            new = clustered(step, dim, 100 + r, topics)
            new_ids = [f"r{r}-{i}" for i in range(step)]
            write(api, new_ids, new)
            api.served_index("big")  # synced: the writes are in the overlay
            seconds, out = timed(lambda: api.refresh_index("big", max_segments=args.segments))
            refresh_s.append(seconds)
            live_ids, live = live_ids + new_ids, np.concatenate([live, new])
            if r == 0:
                report["refresh_1pct_s"] = seconds
                report["refresh_share_of_build"] = seconds / report["build_s"]
                gone = live_ids[:step]
                api.delete_items("big", gone)
                api.served_index("big")
                report["refresh_delete_1pct_s"], _ = timed(
                    lambda: api.refresh_index("big", max_segments=args.segments))
                live_ids, live = live_ids[step:], live[step:]
        report["refresh_s"] = [round(x, 3) for x in refresh_s]
        segs = api.index_status("big")["served"]["segments"] or []
        report["layout"] = [(s["kind"], s["live"]) for s in segs]
        truth_ids, truth_rows = exact_truth(live_ids, live, queries)
        served = api.served_index("big")  # the policy's layout (kept in memory past the merge)
        report["merge_s"], _ = timed(lambda: api.merge_index("big"))
        merged = api.served_index("big")
        raw_live = faiss.IndexHNSWFlat(dim, M, faiss.METRIC_INNER_PRODUCT)
        raw_live.hnsw.efConstruction = EF_CONSTRUCTION
        report["faiss_build_s"], _ = timed(lambda: raw_live.add(live))  # the merge's data
        report["memory"] = memory(api, raw_live, len(live), dim)
        report["equal_build_s"], equal = timed(lambda: equal_segments(live, args.segments))
        report["equal_layout"] = [(s.index.kind, s.live) for s in equal.segments]
        faiss.omp_set_num_threads(1)
        report["load_measure"] = load()
        report.update(measure(args, queries, truth_ids, truth_rows, served, merged, equal,
                              raw_live))
    report["rounds"] = args.rounds
    report["bookkeeping"] = bookkeeping(args.keymap_n, args.new_share)
    report["load_end"] = load()
    return report


def run_layouts(args: argparse.Namespace) -> dict[str, Any]:
    """Index level only (no engine): the layout the size-tiered policy holds when it first
    holds ``--segments`` segments (simulated from a ``--n`` base and refreshes of
    ``--new-share``), ``--segments`` equal hnsw segments, and one merged hnsw index, all over
    the same live vectors, at equal recall, one query a call and batched."""
    from threadpoolctl import threadpool_limits

    from embedops.index import make_index

    faiss.omp_set_num_threads(1)
    threadpool_limits(1)
    step = max(1, int(args.n * args.new_share))
    refresh, sizes = policy_sizes(args.n, step, args.policy_refreshes, args.segments)
    total, dim = sum(sizes), args.dim
    topics = max(16, total // 500)
    live = clustered(total, dim, 0, topics)
    queries = clustered(args.queries, dim, 9, topics)
    flat = faiss.IndexFlatIP(dim)
    flat.add(live)
    rows = [set(r.tolist()) for r in flat.search(queries, 10)[1]]
    report: dict[str, Any] = {"n": total, "dim": dim, "base": args.n, "step": step,
                              "refreshes": refresh, "load_start": load()}
    merged = make_index("hnsw", dim, "cosine", {"M": M, "ef_construction": EF_CONSTRUCTION})
    report["build_merged_s"], _ = timed(lambda: merged.build(live, np.arange(total)))
    report["build_policy_s"], policy = timed(lambda: build_layout(live, sizes))
    equal_sizes = [len(p) for p in np.array_split(np.arange(total), args.segments)]
    report["build_equal_s"], equal = timed(lambda: build_layout(live, equal_sizes))
    report["layout"] = [(s.index.kind, s.live) for s in policy.segments]
    report["equal_layout"] = [(s.index.kind, s.live) for s in equal.segments]
    report["load_measure"] = load()
    modes: Modes = {
        "single": {"merged": (index_search(merged, queries, False), rows, 1),
                   "policy": (index_search(policy, queries, False), rows, 1),
                   "policy_pool2": (index_search(policy, queries, False), rows, 2),
                   "equal": (index_search(equal, queries, False), rows, 1),
                   "equal_pool2": (index_search(equal, queries, False), rows, 2)},
        "batch": {"merged": (index_search(merged, queries, True), rows, 1),
                  "policy": (index_search(policy, queries, True), rows, 1),
                  "equal": (index_search(equal, queries, True), rows, 1),
                  "equal_pool2": (index_search(equal, queries, True), rows, 2)},
    }
    report.update(compete(modes, args, len(queries)))
    report["rounds"] = args.rounds
    report["load_end"] = load()
    return report


def run_extend(args: argparse.Namespace) -> dict[str, Any]:
    """A merge that extends the base graph (``--extend``): ``--n`` vectors built through the
    engine, ``--new-share`` new ones written and refreshed, then ``index merge``, which copies
    the base segment's graph (no tombstones) and inserts the new ones, against the full build
    of the same ``--n`` and against raw FAISS building the merged set from scratch; recall@10
    of the extended graph and of raw FAISS's at the same ``ef_search`` values."""
    from threadpoolctl import threadpool_limits

    faiss.omp_set_num_threads(args.build_threads)
    threadpool_limits(1)
    n, dim, topics = args.n, args.dim, max(16, args.n // 500)
    base = clustered(n, dim, 0, topics)
    step = max(1, int(n * args.new_share))
    new = clustered(step, dim, 100, topics)
    queries = clustered(args.queries, dim, 9, topics)
    base_ids, new_ids = [f"i{i}" for i in range(n)], [f"n{i}" for i in range(step)]
    report: dict[str, Any] = {"n": n, "dim": dim, "step": step, "load_start": load()}
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp, \
            Embedops(workspace(Path(tmp) / "ws", dim)) as api:
        api.collections.create("big", model="rand")
        write(api, base_ids, base)
        report["build_s"], _ = timed(lambda: api.build_index(
            "big", "hnsw", {"M": M, "ef_construction": EF_CONSTRUCTION}, quiet=True))
        write(api, new_ids, new)
        api.served_index("big")
        report["refresh_s"], _ = timed(lambda: api.refresh_index("big"))
        report["merge_s"], out = timed(lambda: api.merge_index("big"))
        report["reused"] = out["reused"]
        live = np.concatenate([base, new])
        raw = faiss.IndexHNSWFlat(dim, M, faiss.METRIC_INNER_PRODUCT)
        raw.hnsw.efConstruction = EF_CONSTRUCTION
        report["faiss_build_s"], _ = timed(lambda: raw.add(live))
        faiss.omp_set_num_threads(1)
        truth_ids, truth_rows = exact_truth(base_ids + new_ids, live, queries)
        truth = [set(r.tolist()) for r in truth_rows]
        served = api.served_index("big")
        merged = served.index
        ids = global_truth(served, truth_ids)
        report["recall"] = {}
        for ef in (16, 32, 64, 128):
            ours = index_search(merged, queries, True)({"ef_search": ef})
            theirs = faiss_search(raw, queries)({"ef_search": ef})
            report["recall"][ef] = (
                float(np.mean([len(a & b) / 10 for a, b in zip(ours, ids, strict=True)])),
                float(np.mean([len(a & b) / 10 for a, b in zip(theirs, truth, strict=True)])))
    report["load_end"] = load()
    return report


def show_extend(report: dict[str, Any]) -> None:
    print(f"{report['n']} x {report['dim']} (synthetic clustered), load {report['load_start']} "
          f"at start, {report['load_end']} at the end")
    print(f"full hnsw build through the engine  {report['build_s']:.2f} s")
    print(f"{report['step']} new vectors: refresh {report['refresh_s']:.2f} s, then index merge "
          f"{report['merge_s']:.2f} s ({report['reused']:,} entries reused) = "
          f"{100 * report['merge_s'] / report['build_s']:.1f}% of the full build; raw FAISS "
          f"building the merged set from scratch {report['faiss_build_s']:.2f} s")
    for ef, (ours, theirs) in report["recall"].items():
        print(f"   ef_search {ef:<4} recall@10 extended graph {ours:.3f}   raw FAISS built "
              f"from scratch {theirs:.3f}")


def show_layouts(report: dict[str, Any]) -> None:
    print(f"{report['n']} x {report['dim']} (synthetic clustered, unit length), one FAISS "
          f"thread, index level; load {report['load_start']} at start, {report['load_end']} "
          "at the end")
    print(f"policy layout (after {report['refreshes']} refreshes of {report['step']} into a "
          f"{report['base']} base, simulated)  {report['layout']}")
    print(f"equal layout               {report['equal_layout']}")
    print(f"builds: merged {report['build_merged_s']:.1f} s, policy layout "
          f"{report['build_policy_s']:.1f} s, equal {report['build_equal_s']:.1f} s")
    show_modes(report, ("single", "batch"))


def show_modes(report: dict[str, Any], modes: tuple[str, ...]) -> None:
    print(f"timed in {report['rounds']} interleaved rounds (load {report['load_measure']} "
          "before); ratio = median over rounds of QPS / merged QPS in the same round; CPU "
          "ratio: the same with queries per CPU second of the process")
    for mode in modes:
        print(f"-- {mode} (load {report[mode]['load']} after)")
        for name, found in report[mode].items():
            if name == "load":
                continue
            print(f"   {name:<13} ef_search {found['ef']:<4} recall@10 {found['recall']:.3f}  "
                  f"{found['ndis']:>6,.0f} dist/query  {found['qps']:>8,.0f} QPS  "
                  f"ratio {found['ratio']:.2f}  per CPU s {found['cpu_qps']:>7,.0f}  "
                  f"CPU ratio {found['cpu_ratio']:.2f}"
                  + (f"  p50 {found['p50_ms']:.3f} ms p99 {found['p99_ms']:.3f} ms"
                     if "p99_ms" in found else ""))


def show(report: dict[str, Any]) -> None:
    print(f"{report['n']} x {report['dim']} ({report['data']}), one FAISS thread, "
          f"load {report['load_start']} at start, {report['load_end']} at the end")
    print(f"ingest through the engine  {report['ingest_s']:.1f} s")
    print(f"full hnsw build            {report['build_s']:.2f} s  (load {report['load_build']})")
    print(f"refresh, 1% new            {report['refresh_1pct_s']:.3f} s  "
          f"= {100 * report['refresh_share_of_build']:.1f}% of the full build")
    print(f"refresh, 1% deleted        {report['refresh_delete_1pct_s']:.3f} s")
    print(f"all refreshes (s)          {report['refresh_s']}")
    print(f"policy layout              {report['layout']}")
    print(f"equal layout               {report['equal_layout']}")
    print(f"merge of the policy layout {report['merge_s']:.2f} s  (a full build over the live "
          f"vectors; raw FAISS HNSW on the same: {report['faiss_build_s']:.2f} s, ratio "
          f"{report['merge_s'] / report['faiss_build_s']:.2f}); 10 equal segments built in "
          f"{report['equal_build_s']:.2f} s")
    mem = report["memory"]
    print(f"memory per live vector     embedops {mem['embedops_per_vector']:.1f} B, raw FAISS "
          f"{mem['faiss_per_vector']:.1f} B (flat fp32 alone {mem['flat_fp32_per_vector']:.0f} B)")
    show_modes(report, ("served", "single", "batch"))
    book = report["bookkeeping"]
    print(f"refresh bookkeeping at {book['n']:,} keys, a write of {book['write']:,}: "
          f"checksum from scratch {book['checksum_from_scratch_s']:.3f} s -> updated "
          f"{book['checksum_updated_s']:.4f} s; kept keys {book['kept_keys_s']:.4f} s; "
          f"served key map {book['served_key_map_s']:.3f} s (still O(n))")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--segments", type=int, default=10)
    parser.add_argument("--refreshes", type=int, default=24)
    parser.add_argument("--new-share", type=float, default=0.01)
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--tmp", default=os.environ.get("TMPDIR"))
    parser.add_argument("--json", default=None, help="also write the report here")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    parser.add_argument("--build-threads", type=int, default=1,
                        help="FAISS threads for builds, both sides alike (searches use one)")
    parser.add_argument("--keymap-n", type=int, default=1_000_000,
                        help="keys for the refresh bookkeeping timings")
    parser.add_argument("--layouts", action="store_true",
                        help="index level only: the policy's layout at --segments segments "
                             "(simulated from a --n base), equal segments and merged")
    parser.add_argument("--extend", action="store_true",
                        help="only the merge that extends the base graph, against a full build")
    parser.add_argument("--policy-refreshes", type=int, default=400,
                        help="refreshes simulated for --layouts")
    args = parser.parse_args()
    if args.extend:
        report = run_extend(args)
        show_extend(report)
    else:
        report = run_layouts(args) if args.layouts else run(args)
        (show_layouts if args.layouts else show)(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
