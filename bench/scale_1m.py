"""Segmented snapshots at scale (issue 19, item 5, the segment part): embedops vs raw FAISS.

Data: synthetic clustered vectors (gaussian topics, unit length, ``--dim`` 128), not model
vectors: the point is the index, and 1M MiniLM encodings do not fit a 2-core machine's hour.
The items go through the real engine (catalog, snapshots, served index) with their vectors
given (``upsert_items(vectors=...)``), under a random static model of the same dimension.

Measured in one run, one FAISS thread:

* full build: ``index build --kind hnsw`` of ``--n`` vectors (catalog read, build, checksummed
  snapshot) next to raw FAISS ``IndexHNSWFlat`` (same ``M`` and ``efConstruction``) on the
  same array;
* refresh: ``--new-share`` (1%) new vectors written, then ``index refresh`` (a new segment
  from those only, the rest hard-linked); then deleting 1% and refreshing again; each as a
  share of the full build;
* QPS at recall@10 >= ``--target`` (0.95) against exact search, one query at a time through
  the served index, for ``--segments`` (10) segments and after ``index merge`` (one), and for
  raw FAISS HNSW on the same live vectors: the cheapest ``ef_search`` reaching the target.

Usage: ``python bench/scale_1m.py [--n 1000000] [--dim 128] [--queries 500]``; ``--n 50000``
for a quick run. Figures are only meaningful on an idle machine.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from embedops.config import Workspace
from embedops.engine import Embedops
from embedops.models.registry import Registry
from embedops.models.static import StaticVectors, publish_static
from embedops.text.tokenize import TokenizerSpec

EF = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
M, EF_CONSTRUCTION = 32, 100
BATCH = 10_000  # the most items one upsert takes


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


def served_qps(api: Embedops, queries: np.ndarray, truth: list[set[str]], target: float
               ) -> tuple[int | None, float, float]:
    """(ef_search, recall@10, QPS) at the cheapest ef_search reaching ``target`` through the
    served index, one query at a time (``None``: not reached; the last ef's figures)."""
    served = api.served_index("big")
    out: tuple[int | None, float, float] = (None, 0.0, 0.0)
    for ef in EF:
        knobs = {"ef_search": ef}
        seconds, found = timed(lambda: [served.search(q, 10, search_params=knobs)  # noqa: B023
                                        for q in queries])
        rec = float(np.mean([len({i for i, _ in f} & t) / 10 for f, t in
                             zip(found, truth, strict=True)]))
        out = (ef if rec >= target else None, rec, len(queries) / seconds)
        if rec >= target:
            return out
    return out


def faiss_qps(index: Any, queries: np.ndarray, truth: np.ndarray, target: float
              ) -> tuple[int | None, float, float]:
    """The same as ``served_qps`` for a raw FAISS HNSW index."""
    out: tuple[int | None, float, float] = (None, 0.0, 0.0)
    for ef in EF:
        index.hnsw.efSearch = ef
        seconds, found = timed(lambda: [index.search(q[None, :], 10)[1][0] for q in queries])
        rec = float(np.mean([len(set(f.tolist()) & set(t.tolist())) / 10
                             for f, t in zip(found, truth, strict=True)]))
        out = (ef if rec >= target else None, rec, len(queries) / seconds)
        if rec >= target:
            return out
    return out


def exact_truth(ids: list[str], vectors: np.ndarray, queries: np.ndarray
                ) -> tuple[list[set[str]], np.ndarray]:
    """Exact top-10 of each query (as item-id sets, and as row numbers)."""
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    rows = flat.search(queries, 10)[1]
    return [{ids[j] for j in row} for row in rows], rows


def run(args: argparse.Namespace) -> dict[str, Any]:
    faiss.omp_set_num_threads(1)
    n, dim, topics = args.n, args.dim, max(16, args.n // 500)
    base = clustered(n, dim, 0, topics)
    queries = clustered(args.queries, dim, 9, topics)
    ids = [f"i{i}" for i in range(n)]
    step = max(1, int(n * args.new_share))
    report: dict[str, Any] = {"n": n, "dim": dim, "data": "synthetic clustered, unit length"}
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp, \
            Embedops(workspace(Path(tmp) / "ws", dim)) as api:
        api.collections.create("big", model="rand")
        report["ingest_s"], _ = timed(lambda: write(api, ids, base))
        report["build_s"], _ = timed(lambda: api.build_index(
            "big", "hnsw", {"M": M, "ef_construction": EF_CONSTRUCTION}, quiet=True))
        raw = faiss.IndexHNSWFlat(dim, M, faiss.METRIC_INNER_PRODUCT)
        raw.hnsw.efConstruction = EF_CONSTRUCTION
        report["faiss_build_s"], _ = timed(lambda: raw.add(base))
        api.served_index("big")  # loaded, as a server holds it
        live_ids, live = list(ids), base
        for r in range(args.segments - 1):
            new = clustered(step, dim, 100 + r, topics)
            new_ids = [f"r{r}-{i}" for i in range(step)]
            write(api, new_ids, new)
            api.served_index("big")  # synced: the writes are in the overlay
            seconds, out = timed(lambda: api.refresh_index("big", max_segments=args.segments))
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
        report["segments"] = len(api.index_status("big")["served"]["segments"] or [])
        truth_ids, truth_rows = exact_truth(live_ids, live, queries)
        report["segmented"] = served_qps(api, queries, truth_ids, args.target)
        report["merge_s"], _ = timed(lambda: api.merge_index("big"))
        report["merged"] = served_qps(api, queries, truth_ids, args.target)
        raw_live = faiss.IndexHNSWFlat(dim, M, faiss.METRIC_INNER_PRODUCT)
        raw_live.hnsw.efConstruction = EF_CONSTRUCTION
        raw_live.add(live)
        report["faiss"] = faiss_qps(raw_live, queries, truth_rows, args.target)
    return report


def show(report: dict[str, Any]) -> None:
    print(f"{report['n']} x {report['dim']} ({report['data']}), one FAISS thread")
    print(f"ingest through the engine  {report['ingest_s']:.1f} s")
    print(f"full hnsw build            {report['build_s']:.2f} s  "
          f"(raw FAISS {report['faiss_build_s']:.2f} s, "
          f"ratio {report['build_s'] / report['faiss_build_s']:.2f})")
    print(f"refresh, 1% new            {report['refresh_1pct_s']:.3f} s  "
          f"= {100 * report['refresh_share_of_build']:.1f}% of the full build")
    print(f"refresh, 1% deleted        {report['refresh_delete_1pct_s']:.3f} s")
    print(f"merge of {report['segments']} segments       {report['merge_s']:.2f} s")
    for name in ("segmented", "merged", "faiss"):
        ef, rec, qps = report[name]
        reached = f"ef_search {ef}" if ef else "target not reached"
        print(f"{name:<10} {reached:<20} recall@10 {rec:.3f}  {qps:,.0f} QPS")
    seg, merged = report["segmented"][2], report["merged"][2]
    print(f"segmented / merged QPS     {seg / merged:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--segments", type=int, default=10)
    parser.add_argument("--new-share", type=float, default=0.01)
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--tmp", default=os.environ.get("TMPDIR"))
    show(run(parser.parse_args()))


if __name__ == "__main__":
    main()
