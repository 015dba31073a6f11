"""Migration benchmark: what ``embedops migrate`` costs, and what it costs the searches beside it.

Data: the reverse-dictionary docs-20k definitions (``--n`` of them, the dev queries' answers
first) and the dev queries whose answer is among them (the golden set of the migration's
recall gate). Models: MiniLM imported with its ONNX files (minilm@1) and a static model
distilled from it (minilm-static@1). In one process, as a server runs them (the migration in a
thread, searches on the caller's thread):

1. search p50/p99 on MiniLM with nothing else running (the anchor);
2. ``migrate`` MiniLM → distilled static: its wall time, and search p50/p99 meanwhile;
3. search p50/p99 on the static model, idle (the second anchor);
4. ``migrate`` back to MiniLM (its vectors are still in the catalog: no backfill, the
   candidate index and the gates only): wall time and search latency meanwhile.

The searches during a migration are split by the model that answered them (before the switch
the old one, after it the new one) and each part is printed as a ratio to the same model idle
(target: p99 during a migration within 1.5x idle). The gates
are those of the CLI run offline (``--min-traffic 0 --canary-seconds 0``), with a recall
tolerance of 1.0 so the quality gap between the two models does not stop the timing run; both
golden recalls are printed. Figures need an idle machine.

    .venv/bin/python bench/migrate.py [--data ../shared/data] [--n 20000] [--dim 256]
"""

from __future__ import annotations

import argparse
import json
import lzma
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from embedops.engine import Embedops  # noqa: E402
from embedops.lifecycle.migrate import MigrateOptions, Migrations  # noqa: E402
from embedops.monitor.db import GoldenQuery, MonitorDB  # noqa: E402
from embedops.train.distill import DistillConfig  # noqa: E402

NAME = "revdict"
OPTIONS = MigrateOptions(golden_set="dev", recall_tolerance=1.0, min_traffic=0,
                         canary_seconds=0.0)


def read_data(data: Path, n: int) -> tuple[list[dict[str, str]], list[GoldenQuery]]:
    """``n`` docs-20k items (the dev queries' answers first, then the others in file order),
    and the dev queries answered among them."""
    with lzma.open(data / "revdict" / "docs-20k.jsonl.xz", "rt", encoding="utf-8") as fh:
        every = [{"id": d["id"], "text": d["text"]} for d in map(json.loads, fh)]
    dev = [json.loads(line) for line in
           (data / "revdict" / "queries-dev.jsonl").read_text().splitlines() if line.strip()]
    answers = {r for q in dev for r in q["relevant"]}
    docs = sorted(every, key=lambda d: d["id"] not in answers)[:n]  # stable: file order kept
    ids = {d["id"] for d in docs}
    queries = [GoldenQuery(q["query"], {r: 1.0 for r in q["relevant"] if r in ids})
               for q in dev if ids.intersection(q["relevant"])]
    return docs, queries


def setup(api: Embedops, docs: list[dict[str, str]], queries: list[GoldenQuery],
          dim: int) -> None:
    """minilm@1, minilm-static@1 distilled from it, the collection on MiniLM, the golden set."""
    started = time.perf_counter()
    api.models.import_transformer("minilm", "minilm")
    api.models.distill("minilm@1", "minilm-static", DistillConfig(dim=dim))
    print(f"imported MiniLM and distilled it (dim {dim}) in {time.perf_counter() - started:.0f} s")
    api.collections.create(NAME, model="minilm@1")
    started = time.perf_counter()
    for at in range(0, len(docs), 1000):
        api.upsert_items(NAME, docs[at:at + 1000])
    # A served index re-reads the writes of the 2 s before its build on every search
    # (search/sync.py's look-back margin): wait them out so the anchor is not slowed by it.
    time.sleep(2.5)
    api.build_index(NAME, "hnsw", quiet=True)
    print(f"{len(docs)} items embedded with MiniLM and indexed in "
          f"{time.perf_counter() - started:.0f} s; {len(queries)} golden queries")
    db = MonitorDB(api.workspace, api)
    try:
        db.create_set("dev", NAME)
        db.add_queries("dev", queries)
    finally:
        db.close()


Timings = dict[str, list[float]]


class Queries:
    """Query texts never asked before (the engine caches query vectors, as a server does:
    a repeated text would time a cache hit): the dev queries, then definitions, then the same
    again with a round number appended."""

    def __init__(self, texts: list[str]) -> None:
        self.texts, self.n = texts, 0

    def next(self) -> str:
        text, rounds = self.texts[self.n % len(self.texts)], self.n // len(self.texts)
        self.n += 1
        return f"{text} {rounds}" if rounds else text


def search_until(api: Embedops, queries: Queries, done: Callable[[int], bool]) -> Timings:
    """Search latencies (ms) of a steady stream of queries (2 ms apart, not a busy loop),
    until ``done(searches so far)``, by the model version that answered."""
    out: Timings = {}
    n = 0
    while not done(n):
        started = time.perf_counter()
        version = api.search(NAME, queries.next(), k=10).model_version
        out.setdefault(version, []).append((time.perf_counter() - started) * 1000)
        n += 1
        time.sleep(0.002)
    return out


def during(api: Embedops, target: str, queries: Queries, options: MigrateOptions = OPTIONS
           ) -> tuple[float, Timings, Any]:
    """Migrate to ``target`` in a thread while searching: wall time, latencies, final state."""
    result: dict[str, Any] = {}

    def work() -> None:
        started = time.perf_counter()
        result["state"] = Migrations(api, who="bench").run(NAME, target, options)
        result["wall"] = time.perf_counter() - started

    thread = threading.Thread(target=work)
    thread.start()
    ms = search_until(api, queries, lambda _: not thread.is_alive())
    thread.join()
    state = result["state"]
    if state["step"] != "done":
        raise SystemExit(f"migration to {target} ended {state['step']}: {state.get('reason')}")
    return float(result["wall"]), ms, state


def pct(ms: list[float]) -> str:
    return f"p50 {np.percentile(ms, 50):.2f} ms, p99 {np.percentile(ms, 99):.2f} ms (n={len(ms)})"


def compare(during_ms: Timings, idle_ms: Timings) -> None:
    """Per answering version: latency during the migration and its ratio to the same version
    idle (a search answered by the other model is compared with that model's idle figures)."""
    for version, ms in sorted(during_ms.items()):
        anchor = idle_ms.get(version)
        ratio = "" if not anchor else (
            f"; ratio to idle p50 {np.percentile(ms, 50) / np.percentile(anchor, 50):.2f}, p99 "
            f"{np.percentile(ms, 99) / np.percentile(anchor, 99):.2f} (target ≤ 1.5)")
        print(f"  search answered by {version}: {pct(ms)}{ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--n", type=int, default=20_000, help="items of docs-20k to use")
    parser.add_argument("--dim", type=int, default=256, help="dim of the distilled model")
    parser.add_argument("--idle-searches", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=None,
                        help="backfill items per second (migrate --rate; default: unlimited)")
    args = parser.parse_args()
    options = replace(OPTIONS, rate=args.rate)
    docs, golden = read_data(args.data, args.n)
    queries = Queries([q.query for q in golden] + [d["text"][:120] for d in docs])
    with tempfile.TemporaryDirectory() as tmp, Embedops(home=Path(tmp) / "ws") as api:
        setup(api, docs, golden, args.dim)
        idle: Timings = {}
        for target in ("minilm-static@1", "minilm@1"):
            api.search(NAME, "warm-up", k=10)  # load the served index before timing
            anchor = search_until(api, queries, lambda n: n >= args.idle_searches)
            for version, ms in anchor.items():
                print(f"search, idle on {version} (anchor): {pct(ms)}")
            idle.update(anchor)
            wall, ms, state = during(api, target, queries, options)
            plan = state["plan"]
            print(f"migrate {plan['source']} → {target}: {wall:.1f} s wall ({plan['missing']} "
                  f"items to embed; golden recall@10 {state.get('golden', {}).get('recall')})")
            compare(ms, idle)


if __name__ == "__main__":
    main()
