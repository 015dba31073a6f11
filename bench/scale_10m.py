"""The 10M asymptotics (issue 19, item 5): compressed ANN through the engine vs raw FAISS.

HNSW at 10M vectors does not build on a 2-core machine in an hour, so this run uses the
compressed backend ``rabitq`` (FAISS IVF-RaBitQ, 1 bit per dimension in RAM, exact rescoring
from the full vectors memory-mapped on disk) through the real engine (catalog, checksummed
snapshot, served index), with raw FAISS ``IndexIVFRaBitQ`` beside it on the same data: the same
cell count, trained on the same vectors (FAISS's k-means draws its sample with a fixed seed
from the same rows in the same order: the same training sample), rescored exactly the same way
(FAISS's ``knn_inner_products_by_idx`` over a memory-mapped float32 file), so recall compares.

Data: ``--n`` synthetic clustered unit vectors (gaussian topics, ``--dim`` 96) drawn in chunks
of ``CHUNK`` rows into a float32 ``.npy`` file (memory-mapped: this process holds no second
copy of the set; the page cache does), then written through ``upsert_items(vectors=...)``
under a random static model of the same dimension, 10,000 items a call.

Measured in one run (FAISS builds on ``--build-threads`` threads on both sides alike, every
search on one FAISS thread, numpy's BLAS on one thread; the load average beside each figure):

* ingest through the engine (seconds, rows a second);
* full build: ``build_index(kind="rabitq")`` (catalog read, train, add, snapshot) vs raw FAISS
  (train + add); then the engine is reopened and the index loaded from its snapshot, as a
  server starts (seconds);
* memory per vector: ``index status``'s ``memory_bytes`` (codes, cells, id maps; the rescoring
  vectors are memory-mapped) vs raw FAISS's serialized size (codes and cells), against flat
  float32 (``dim * 4``) and the target ``dim * 4 / 16 + 8`` (1/16 of flat plus an id);
* QPS at recall@10 >= ``--target`` (0.95) against exact search (computed in chunks): for each
  rescoring depth the fewest ``nprobe`` cells reaching it (doubling then bisection, recall
  untimed, all queries in one call; from 1 cell), the fastest of those per side; then both
  sides timed in ``--rounds`` interleaved rounds (a batch of all queries a call; and one
  query a call: the engine's served index as a server searches, raw FAISS), with p50/p99
  latency of one query a call (``--rounds`` passes, the two sides taking turns query by query);
* 1% (``--new-share``) new vectors written then ``refresh_index`` (folded into a copy of the
  one segment, or sealed as a new one: the layout is printed; seconds and share of the full
  build) vs raw FAISS ``add_with_ids``; then 1% deleted and refreshed vs raw
  ``remove_ids``; recall at the chosen settings after both, then the cheapest settings
  reaching the target again and one more timed comparison;
* peak memory of the process: the largest anonymous RSS seen (sampled every 0.2 s) and
  VmHWM (which also counts the memory-mapped file's pages), per phase.

Usage: ``python bench/scale_10m.py [--n 10000000] [--dim 96] [--json out.json]``; ``--n
200000`` for a quick run. Needs about ``n * dim * 4 * 3`` bytes of disk (the generated file,
the catalog's copy, the snapshot's rescoring file) plus the catalog's rows. Figures are only
meaningful on an idle machine.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from scale_1m import (  # noqa: E402
    OneByOne,
    clustered,
    load,
    race,
    timed,
    workspace,
    write,
)

from embedops.engine import Embedops  # noqa: E402
from embedops.index.rescore import MIN_CANDIDATES  # noqa: E402

CHUNK = 100_000  # rows drawn (and written to the engine) at a time
FACTORS = (2, 10, 20)  # rescoring depths tried: 64 (the floor), 100 and 200 candidates at k=10
K = 10


class Peak:
    """Samples this process's anonymous RSS every ``every`` seconds in a daemon thread; the
    largest seen since the last ``mark``, per phase, plus VmHWM (all pages, file-backed too)."""

    def __init__(self, every: float = 0.2) -> None:
        self.every, self.top = every, 0
        self.phases: dict[str, dict[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    @staticmethod
    def status() -> dict[str, int]:
        out = {}
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(("RssAnon", "RssFile", "VmHWM", "VmRSS")):
                    key, value = line.split(":")
                    out[key] = int(value.split()[0]) * 1024
        return out

    def _watch(self) -> None:
        while not self._stop.wait(self.every):
            self.top = max(self.top, self.status()["RssAnon"])

    def mark(self, phase: str) -> None:
        """Close ``phase``: its peak anonymous RSS and the VmHWM so far (MB)."""
        now = self.status()
        self.top = max(self.top, now["RssAnon"])
        self.phases[phase] = {"peak_anon_mb": round(self.top / 2**20, 1),
                              "anon_now_mb": round(now["RssAnon"] / 2**20, 1),
                              "vm_hwm_mb": round(now["VmHWM"] / 2**20, 1)}
        self.top = now["RssAnon"]
        print(f"[{time.strftime('%H:%M:%S', time.gmtime())} UTC] {phase} done, load {load()}, "
              f"peak anon {self.phases[phase]['peak_anon_mb']:,.0f} MB", file=sys.stderr,
              flush=True)

    def stop(self) -> None:
        self._stop.set()


def cpu_timed(report: dict[str, Any], name: str, fn: Callable[[], Any]) -> Any:
    """Run ``fn``; record its wall seconds as ``name`` and the process's CPU seconds (every
    thread: FAISS's and SQLite's too) as ``name`` with ``_s`` -> ``_cpu_s``: on a loaded
    machine the work, which the wall clock of sequential steps does not compare."""
    started = time.process_time()
    report[name], out = timed(fn)
    report[name.removesuffix("_s") + "_cpu_s"] = time.process_time() - started
    return out


def key(row: int, n: int) -> str:
    """The item id of row ``row`` of the data file (base rows, then the 1% written later)."""
    return f"i{row}" if row < n else f"r{row - n}"


def generate(path: Path, n: int, extra: int, dim: int, topics: int) -> np.ndarray:
    """A ``(n + extra, dim)`` float32 ``.npy`` file, memory-mapped: ``n`` base rows drawn in
    chunks (chunk ``c`` from seed ``1000 + c``), then ``extra`` new rows (seed 777)."""
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n + extra, dim))
    for c, start in enumerate(range(0, n, CHUNK)):
        stop = min(n, start + CHUNK)
        mm[start:stop] = clustered(stop - start, dim, 1000 + c, topics)
    if extra:
        mm[n:] = clustered(extra, dim, 777, topics)
    mm.flush()
    return mm


def ingest(api: Embedops, mm: np.ndarray, lo: int, hi: int, n: int) -> None:
    """Write rows ``lo..hi`` of the file through the engine, ``CHUNK`` rows read at a time."""
    for start in range(lo, hi, CHUNK):
        stop = min(hi, start + CHUNK)
        write(api, [key(r, n) for r in range(start, stop)], np.array(mm[start:stop]))


def exact_rows(mm: np.ndarray, lo: int, hi: int, queries: np.ndarray) -> np.ndarray:
    """Exact top-10 rows (inner product = cosine: unit vectors) over rows ``lo..hi`` of the
    file, a chunk at a time (FAISS flat search per chunk, the chunks' tops merged)."""
    best_d = np.full((len(queries), K), -np.inf, dtype=np.float32)
    best_i = np.full((len(queries), K), -1, dtype=np.int64)
    for start in range(lo, hi, 4 * CHUNK):
        stop = min(hi, start + 4 * CHUNK)
        d, i = faiss.knn(queries, np.ascontiguousarray(mm[start:stop]), K,
                         metric=faiss.METRIC_INNER_PRODUCT)
        d_all, i_all = np.hstack([best_d, d]), np.hstack([best_i, i + start])
        top = np.argsort(-d_all, axis=1, kind="stable")[:, :K]
        best_d, best_i = np.take_along_axis(d_all, top, 1), np.take_along_axis(i_all, top, 1)
    return best_i


class RawRaBitQ:
    """Raw FAISS ``IndexIVFRaBitQ`` (1 bit, 4-bit queries, as the engine's defaults) with ids =
    rows of the memory-mapped file, rescored exactly from it the way the engine does."""

    def __init__(self, mm: np.ndarray, dim: int, nlist: int) -> None:
        self.mm, self.dim = mm, dim
        self.quantizer = faiss.IndexFlatIP(dim)
        self.index = faiss.IndexIVFRaBitQ(self.quantizer, dim, nlist,
                                          faiss.METRIC_INNER_PRODUCT, True, 1)
        self.index.qb = 4
        self._params: dict[int, Any] = {}

    def build(self, n: int) -> None:
        """Train on rows ``0..n`` (FAISS samples them as the engine's build does) and add them."""
        base = self.mm[:n]
        self.index.train(base)
        self.add(0, n)

    def add(self, lo: int, hi: int) -> None:
        for start in range(lo, hi, CHUNK):
            stop = min(hi, start + CHUNK)
            self.index.add_with_ids(np.ascontiguousarray(self.mm[start:stop]),
                                    np.arange(start, stop, dtype=np.int64))

    def remove(self, lo: int, hi: int) -> int:
        return int(self.index.remove_ids(faiss.IDSelectorRange(lo, hi)))

    def params(self, nprobe: int) -> Any:
        p = self._params.get(nprobe)
        if p is None:
            p = faiss.IVFRaBitQSearchParameters()
            p.nprobe, p.qb = nprobe, 4
            self._params[nprobe] = p
        return p

    def search(self, q: np.ndarray, knobs: dict[str, int]) -> np.ndarray:
        """Top-10 rows of queries ``q``: ``max(10 * rescore_factor, 64)`` candidates from the
        codes, re-ranked exactly from the file."""
        fetch = min(int(self.index.ntotal), max(K * knobs["rescore_factor"], MIN_CANDIDATES))
        _, labels = self.index.search(q, fetch, params=self.params(knobs["nprobe"]))
        m = len(q)
        vals = np.empty((m, K), dtype=np.float32)
        best = np.empty((m, K), dtype=np.int64)
        ptr, knn = faiss.swig_ptr, faiss.knn_inner_products_by_idx  # type: ignore[attr-defined]
        knn(ptr(q), ptr(self.mm), ptr(labels), self.dim, m, len(self.mm), fetch, K, ptr(vals),
            ptr(best), fetch)
        return best  # the candidates' own labels (rows of the file), best first


def recall(found: list[set[Any]], truth: list[set[Any]]) -> float:
    return float(np.mean([len(f & t) / K for f, t in zip(found, truth, strict=True)]))


Search = Callable[[dict[str, int]], list[set[Any]]]


def first_probe(n: int, nlist: int, segmented: bool) -> int:
    """The fewest cells tried: 1, on a plain index and a segmented one alike. (Before
    330d467 a segmented index started at 4 cells: a segment whose cells held under
    ``k`` vectors for a query grew its fetch up to the whole segment for the entire batch,
    about 4 GB at 200k vectors; the fetch now grows only while more results can come.)"""
    return 1


def fewest_probes(search: Search, truth: list[set[Any]], factor: int, nlist: int,
                  target: float, start: int) -> dict[str, Any] | None:
    """The fewest ``nprobe`` reaching ``target`` at rescoring depth ``factor``: doubling from
    ``start``, then bisection between the last miss and the first hit (recall grows with
    nprobe); ``start`` itself when it reaches the target (fewer is not tried)."""
    def rec(p: int) -> float:
        return recall(search({"nprobe": p, "rescore_factor": factor}), truth)

    low, high, r = start - 1, start, 0.0
    while True:
        r = rec(high)
        if r >= target:
            break
        if high >= nlist:
            return None
        low, high = high, min(nlist, 2 * high)
    hit = r
    if high == start:
        return {"nprobe": start, "rescore_factor": factor, "recall": hit}
    while high - low > 1:
        mid = (low + high) // 2
        r = rec(mid)
        if r >= target:
            high, hit = mid, r
        else:
            low = mid
    return {"nprobe": high, "rescore_factor": factor, "recall": hit}


def cheapest(search: Search, truth: list[set[Any]], nlist: int, target: float, n_q: int,
             start: int) -> dict[str, Any]:
    """For each rescoring depth the fewest cells reaching ``target``; the fastest of those
    (best of two untimed-by-race batch passes). ``{"nprobe": None}`` when none reaches it."""
    best: dict[str, Any] = {"nprobe": None, "rescore_factor": None, "recall": 0.0, "qps": 0.0}
    for factor in FACTORS:
        found = fewest_probes(search, truth, factor, nlist, target, start)
        if found is None:
            continue
        knobs = {"nprobe": found["nprobe"], "rescore_factor": factor}
        qps = n_q / min(timed(functools.partial(search, knobs))[0] for _ in range(2))
        if qps > best["qps"]:
            best = {**found, "qps": qps}
    return best


def knobs_of(found: dict[str, Any]) -> dict[str, int]:
    return {"nprobe": int(found["nprobe"]), "rescore_factor": int(found["rescore_factor"])}


def compare(sides: dict[str, tuple[Search, OneByOne, list[set[Any]], list[set[Any]],
                                   dict[str, Any]]],
            n_q: int, rounds: int) -> dict[str, Any]:
    """Each side at its own settings: a batch of all queries a call and one query a call, in
    interleaved rounds (ratio: median same-round QPS over the first side's), p50/p99 of one
    query a call (``latencies``) and the recall of one query a call."""
    first = next(iter(sides))
    batch = race({name: functools.partial(s[0], knobs_of(s[4])) for name, s in sides.items()},
                 n_q, rounds, first)
    single = race({name: functools.partial(s[1], knobs_of(s[4])) for name, s in sides.items()},
                  n_q, rounds, first)
    lats = latencies({name: (s[1], knobs_of(s[4])) for name, s in sides.items()}, rounds)
    out: dict[str, Any] = {}
    for name, (_, one, _, one_truth, found) in sides.items():
        lat = lats[name]
        out[name] = {**{k: found[k] for k in ("nprobe", "rescore_factor", "recall")},
                     "batch": batch[name], "single": {**single[name], **lat},
                     "single_recall": recall(one(knobs_of(found)), one_truth)}
    out["load"] = load()
    return out


def latencies(sides: dict[str, tuple[OneByOne, dict[str, int]]], passes: int
              ) -> dict[str, dict[str, float]]:
    """p50/p99 (ms) of one query a call per side over ``passes`` passes of the queries, the
    sides taking turns query by query (in a shuffled order each query), so that a loaded
    machine's stalls fall on both alike."""
    import random

    rng = random.Random(1)
    names = list(sides)
    took: dict[str, list[float]] = {name: [] for name in names}
    queries = next(iter(sides.values()))[0].queries
    for _ in range(passes):
        for q in queries:
            rng.shuffle(names)
            for name in names:
                one, knobs = sides[name]
                started = time.perf_counter()
                one.one(q, knobs)
                took[name].append(time.perf_counter() - started)
    return {name: {"p50_ms": float(np.percentile(1000 * np.asarray(t), 50)),
                   "p99_ms": float(np.percentile(1000 * np.asarray(t), 99))}
            for name, t in took.items()}


def preflight(n: int, dim: int, tmp: str | None) -> dict[str, float]:
    """What the run will need (GB), warned about on stderr when the machine has less: RAM for
    the engine's full build (about ``800 + 12 * dim`` bytes a vector at its peak; 1.97 KB
    measured at 1M x 96: the catalog's ids and rows, the float32 matrix, its prepared copy,
    the rescoring store's copy, FAISS's training sample and codes), and disk (the generated
    file, the catalog with its vectors, the snapshot's rescoring file)."""
    import shutil

    need = {"ram_gb": n * (800 + 12 * dim) / 1e9, "disk_gb": n * (3 * 4 * dim + 600) / 1e9}
    with open("/proc/meminfo", encoding="ascii") as f:
        info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
    have = {"ram_gb": info["MemAvailable"] / 1e9,
            "disk_gb": shutil.disk_usage(tmp or tempfile.gettempdir()).free / 1e9}
    for what in need:
        if need[what] > 0.9 * have[what]:
            print(f"warning: this run needs about {need[what]:.1f} GB of {what[:-3]}, "
                  f"{have[what]:.1f} GB available", file=sys.stderr, flush=True)
    return {**{f"need_{k}": round(v, 2) for k, v in need.items()},
            **{f"available_{k}": round(v, 2) for k, v in have.items()}}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # numpy's BLAS: one thread, as in a server worker
    n, dim = args.n, args.dim
    topics = max(16, n // 500)
    step = max(1, int(n * args.new_share))
    queries = clustered(args.queries, dim, 9, topics)
    peak = Peak()
    report: dict[str, Any] = {"n": n, "dim": dim, "queries": args.queries, "step": step,
                              "data": "synthetic clustered, unit length",
                              "build_threads": args.build_threads, "load_start": load(),
                              "preflight": preflight(n, dim, args.tmp)}
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        home = Path(tmp)
        report["generate_s"], mm = timed(lambda: generate(home / "data.npy", n, step, dim,
                                                          topics))
        peak.mark("generate")
        ws = workspace(home / "ws", dim)
        with Embedops(ws) as api:
            api.collections.create("big", model="rand")
            cpu_timed(report, "ingest_s", lambda: ingest(api, mm, 0, n, n))
            report["load_ingest"] = load()
            peak.mark("ingest")
            faiss.omp_set_num_threads(args.build_threads)
            params = {"nlist": args.nlist} if args.nlist else {}
            cpu_timed(report, "build_s",
                      lambda: api.build_index("big", "rabitq", params, quiet=True))
            report["load_build"] = load()
            peak.mark("engine_build")
        # a server's start: a fresh engine loads (and verifies) the snapshot; the rescoring
        # vectors are then memory-mapped, not held in this process's anonymous memory
        api = Embedops(ws)
        try:
            report["load_snapshot_s"], served = timed(lambda: api.served_index("big"))
            peak.mark("engine_load")
            index = served.index
            nlist = int(index.describe()["nlist"])
            report["nlist"] = nlist
            report["trained_on"] = index.describe().get("trained_on")
            raw = RawRaBitQ(mm, dim, nlist)
            cpu_timed(report, "faiss_build_s", lambda: raw.build(n))
            report["load_faiss_build"] = load()
            peak.mark("faiss_build")
            report["truth_s"], rows = timed(lambda: exact_rows(mm, 0, n, queries))
            faiss.omp_set_num_threads(1)
            report["memory"] = memory(api, raw, n, dim)
            report["before"] = measure(args, served, raw, queries, rows, n, None)
            peak.mark("measure")
            report.update(churn(args, api, raw, mm, queries, n, step, report))
            peak.mark("churn")
        finally:
            api.close()
    peak.stop()
    report["peak_memory"] = peak.phases
    report["load_end"] = load()
    return report


def memory(api: Embedops, raw: RawRaBitQ, n: int, dim: int) -> dict[str, float]:
    """Bytes per vector: the served index as ``index status`` reports it, raw FAISS's index
    (serialized: codes, cells, ids), flat float32, and the target (1/16 of flat plus an id)."""
    served = api.index_status("big")["served"]
    return {"embedops_per_vector": served["memory_bytes"] / n,
            "faiss_per_vector": len(faiss.serialize_index(raw.index)) / n,
            "flat_fp32_per_vector": 4.0 * dim, "target_per_vector": 4.0 * dim / 16 + 8}


def sides(served: Any, raw: RawRaBitQ, queries: np.ndarray, rows: np.ndarray, n: int
          ) -> dict[str, tuple[Search, OneByOne, list[set[Any]], list[set[Any]]]]:
    """Per contestant: (batch search, one-query-a-call search, truth of each). The engine's
    global ids are rows of the file (items in insertion order; checked on every truth row)."""
    keys = served.keys
    for r in np.unique(rows):
        if keys[int(r)] != key(int(r), n):
            raise RuntimeError("the served index's ids are not the data file's rows")
    row_truth = [set(r.tolist()) for r in rows]
    key_truth = [{key(int(j), n) for j in r} for r in rows]
    index = served.index

    def ours(knobs: dict[str, int]) -> list[set[Any]]:
        return [set(r.tolist()) for r in index.search(queries, K, knobs)[0]]

    def theirs(knobs: dict[str, int]) -> list[set[Any]]:
        return [set(r.tolist()) for r in raw.search(queries, knobs)]

    return {
        "embedops": (ours, OneByOne(lambda q, knobs: {
            k for k, _ in served.search(q, K, search_params=knobs)}, queries),
            row_truth, key_truth),
        "faiss": (theirs, OneByOne(lambda q, knobs: set(
            raw.search(q[None, :], knobs)[0].tolist()), queries), row_truth, row_truth),
    }


def measure(args: argparse.Namespace, served: Any, raw: RawRaBitQ, queries: np.ndarray,
            rows: np.ndarray, n: int, kept: dict[str, Any] | None) -> dict[str, Any]:
    """The cheapest settings reaching the target per side, then timed; with ``kept`` (the
    settings chosen earlier), the recall at those settings too."""
    contestants = sides(served, raw, queries, rows, n)
    nlist = int(raw.index.nlist)
    from embedops.index.segments import SegmentedIndex

    start = first_probe(int(raw.index.ntotal), nlist, isinstance(served.index, SegmentedIndex))
    found: dict[str, Any] = {}
    for name, (batch, _, truth, _) in contestants.items():
        if kept is not None:
            r = recall(batch(knobs_of(kept[name])), truth)
            found[name] = {"recall_at_previous": r}
        again = cheapest(batch, truth, nlist, args.target, len(queries), start)
        if again["nprobe"] is None:
            raise RuntimeError(f"{name} never reaches recall {args.target}")
        found[name] = {**found.get(name, {}), **again}
    out = compare({name: (*c, found[name]) for name, c in contestants.items()},
                  len(queries), args.rounds)
    out["nprobe_floor"] = start
    for name in contestants:
        if "recall_at_previous" in found[name]:
            out[name]["recall_at_previous"] = found[name]["recall_at_previous"]
    return out


def churn(args: argparse.Namespace, api: Embedops, raw: RawRaBitQ, mm: np.ndarray,
          queries: np.ndarray, n: int, step: int, report: dict[str, Any]) -> dict[str, Any]:
    """1% new vectors then 1% deleted, each made searchable (engine: ``refresh_index``, a new
    segment; raw FAISS: ``add_with_ids`` / ``remove_ids``), timed; then recall at the settings
    chosen before, the cheapest settings again, and both sides timed again."""
    out: dict[str, Any] = {}
    faiss.omp_set_num_threads(args.build_threads)
    out["write_new_s"], _ = timed(lambda: ingest(api, mm, n, n + step, n))
    api.served_index("big")  # synced: the writes are in the overlay
    cpu_timed(out, "refresh_new_s", lambda: api.refresh_index("big"))
    out["refresh_new_share"] = out["refresh_new_s"] / report["build_s"]
    cpu_timed(out, "faiss_add_s", lambda: raw.add(n, n + step))
    out["faiss_add_share"] = out["faiss_add_s"] / report["faiss_build_s"]
    gone = [key(r, n) for r in range(step)]
    out["delete_s"], _ = timed(lambda: api.delete_items("big", gone))
    api.served_index("big")
    cpu_timed(out, "refresh_delete_s", lambda: api.refresh_index("big"))
    out["refresh_delete_share"] = out["refresh_delete_s"] / report["build_s"]
    out["faiss_removed"] = cpu_timed(out, "faiss_remove_s", lambda: raw.remove(0, step))
    out["faiss_remove_share"] = out["faiss_remove_s"] / report["faiss_build_s"]
    out["load_churn"] = load()
    served = api.served_index("big")
    status = api.index_status("big")["served"]
    out["layout"] = [(s["kind"], s["live"]) for s in status.get("segments") or []]
    out["memory_after_per_vector"] = status["memory_bytes"] / n
    faiss.omp_set_num_threads(args.build_threads)
    rows = exact_rows(mm, step, n + step, queries)
    faiss.omp_set_num_threads(1)
    before = report["before"]
    out["after"] = measure(args, served, raw, queries, rows, n, before)
    return out


def show(report: dict[str, Any]) -> None:
    n = report["n"]
    print(f"{n:,} x {report['dim']} ({report['data']}), {report['queries']} queries, FAISS "
          f"builds on {report['build_threads']} threads on both sides, searches on one; load "
          f"{report['load_start']} at start, {report['load_end']} at the end")
    pre = report["preflight"]
    print(f"preflight: needs about {pre['need_ram_gb']:.1f} GB of RAM at the engine build's "
          f"peak ({pre['available_ram_gb']:.1f} available), {pre['need_disk_gb']:.1f} GB of "
          f"disk ({pre['available_disk_gb']:.1f} free)")
    print(f"generate (chunks of {CHUNK:,}, to a memory-mapped file)  {report['generate_s']:.1f} s")
    print(f"ingest through the engine   {report['ingest_s']:.1f} s "
          f"({n / report['ingest_s']:,.0f} rows/s, load {report['load_ingest']})")
    print(f"full build, rabitq nlist {report['nlist']}: embedops {report['build_s']:.1f} s "
          f"(catalog read, train, add, snapshot; load {report['load_build']}), raw FAISS "
          f"{report['faiss_build_s']:.1f} s (train + add; load {report['load_faiss_build']}): "
          f"ratio {report['build_s'] / report['faiss_build_s']:.2f}; CPU seconds "
          f"{report['build_cpu_s']:.1f} vs {report['faiss_build_cpu_s']:.1f}: ratio "
          f"{report['build_cpu_s'] / report['faiss_build_cpu_s']:.2f}")
    print(f"snapshot loaded by a fresh engine (as a server starts)  "
          f"{report['load_snapshot_s']:.1f} s; exact truth {report['truth_s']:.1f} s")
    mem = report["memory"]
    print(f"memory per vector           embedops {mem['embedops_per_vector']:.1f} B, raw FAISS "
          f"{mem['faiss_per_vector']:.1f} B; flat fp32 {mem['flat_fp32_per_vector']:.0f} B "
          f"(target 1/16 + id: {mem['target_per_vector']:.0f} B); after the churn embedops "
          f"{report['memory_after_per_vector']:.1f} B")
    print(f"1% new ({report['step']:,}): written {report['write_new_s']:.1f} s; refresh "
          f"{report['refresh_new_s']:.2f} s = {100 * report['refresh_new_share']:.1f}% of the "
          f"build; raw FAISS add {report['faiss_add_s']:.2f} s = "
          f"{100 * report['faiss_add_share']:.1f}% of its build; CPU s "
          f"{report['refresh_new_cpu_s']:.2f} vs {report['faiss_add_cpu_s']:.2f}")
    print(f"1% deleted: delete {report['delete_s']:.1f} s; refresh "
          f"{report['refresh_delete_s']:.2f} s = {100 * report['refresh_delete_share']:.1f}% "
          f"of the build; raw FAISS remove_ids {report['faiss_remove_s']:.2f} s = "
          f"{100 * report['faiss_remove_share']:.1f}% of its build; CPU s "
          f"{report['refresh_delete_cpu_s']:.2f} vs {report['faiss_remove_cpu_s']:.2f} (load "
          f"{report['load_churn']})")
    print(f"layout after the churn      {report['layout']}")
    for label, part in (("before the churn", report["before"]),
                        ("after the churn", report["after"])):
        print(f"-- {label}: at recall@10 >= target, {report['rounds']} interleaved rounds, "
              f"ratio = median same-round QPS over embedops'; nprobe tried from "
              f"{part['nprobe_floor']} (load {part['load']} after)")
        for name in ("embedops", "faiss"):
            s = part[name]
            prev = (f" (recall at the earlier settings {s['recall_at_previous']:.3f})"
                    if "recall_at_previous" in s else "")
            print(f"   {name:<9} nprobe {s['nprobe']:<5} x{s['rescore_factor']:<3} recall@10 "
                  f"{s['recall']:.3f}{prev}; batch {s['batch']['qps']:>8,.0f} QPS ratio "
                  f"{s['batch']['ratio']:.2f}; one a call {s['single']['qps']:>7,.0f} QPS "
                  f"ratio {s['single']['ratio']:.2f} (recall {s['single_recall']:.3f}), p50 "
                  f"{s['single']['p50_ms']:.3f} ms p99 {s['single']['p99_ms']:.3f} ms")
    print("memory (MB) per phase: peak anonymous RSS (sampled), anonymous at its end, VmHWM")
    for phase, m in report["peak_memory"].items():
        print(f"   {phase:<13} peak anon {m['peak_anon_mb']:>9,.1f}  at end "
              f"{m['anon_now_mb']:>9,.1f}  VmHWM {m['vm_hwm_mb']:>9,.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--dim", type=int, default=96)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--nlist", type=int, default=0, help="0: the engine's auto choice")
    parser.add_argument("--new-share", type=float, default=0.01)
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    parser.add_argument("--build-threads", type=int, default=2,
                        help="FAISS threads for builds, both sides alike (searches use one)")
    parser.add_argument("--tmp", default=os.environ.get("TMPDIR"))
    parser.add_argument("--json", default=None, help="also write the report here")
    args = parser.parse_args()
    report = run(args)
    report["rounds"] = args.rounds
    show(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
