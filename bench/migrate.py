"""Migration benchmark: what ``embedops migrate`` costs, and what it costs the searches beside it.

Data: the reverse-dictionary docs-20k definitions (``--n`` of them, the dev queries' answers
first) and the dev queries whose answer is among them (the golden set of the migration's
recall gate). Models: MiniLM imported with its ONNX files (minilm@1) and a static model
distilled from it (minilm-static@1). The collection starts on MiniLM (its vectors from the
shared MiniLM cache of ``bench/_minilm_cache.py`` when present, else embedded here).

Deployment as it runs (``--mode process``, the default): ``embedops serve`` in one process, a
load process sending searches to it over HTTP one after another (``--pause-ms`` apart, every
query text new, so the server's query cache never answers), and ``embedops migrate`` as a
separate process (as a Kubernetes Job would run it), at its default ``--nice 10``:

1. search p50/p99 on MiniLM with nothing else running (the anchor, ``--idle-s`` seconds);
2. ``migrate`` MiniLM → distilled static: its wall time, and search p50/p99 meanwhile;
3. search p50/p99 on the static model, idle (the second anchor);
4. ``migrate`` back to MiniLM (its vectors are still in the catalog: no backfill, the
   candidate index and the gates only): wall time and search latency meanwhile;
5. search p50/p99 on MiniLM idle again (its idle windows bracket both migrations, which
   matters on a machine shared with other work).

Latency is the load process's: request sent to answer read, HTTP included. The searches during
a migration are split by the model that answered them and each part is compared with the same
model idle (target: p99 during a migration within 1.5x idle). ``--mode thread`` is the older
measurement: the migration in a thread of the process that searches (in-process facade calls,
no HTTP), the setup issue #18 first measured. The gates are those of the CLI run offline
(``--min-traffic 0 --canary-seconds 0``), with a recall tolerance of 1.0 so the quality gap
between the two models does not stop the timing run; both golden recalls are printed. Figures
need an otherwise idle machine: the load average is printed at the start and the end.

    .venv/bin/python bench/migrate.py [--data ../shared/data] [--n 20000] [--dim 256]
        [--mode process|thread] [--nice 10] [--idle-s 30] [--pause-ms 2] [--template DIR]
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import shutil
import subprocess
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
sys.path.insert(0, str(HERE))

from embedops.engine import Embedops  # noqa: E402
from embedops.lifecycle.migrate import MigrateOptions, Migrations  # noqa: E402
from embedops.monitor.db import GoldenQuery, MonitorDB  # noqa: E402
from embedops.train.distill import DistillConfig  # noqa: E402

NAME = "revdict"
OPTIONS = MigrateOptions(golden_set="dev", recall_tolerance=1.0, min_traffic=0,
                         canary_seconds=0.0)
TARGETS = ("minilm-static@1", "minilm@1")

# The load process: searches one after another until the stop file appears; each line of the
# output is [sent at (epoch s), latency ms, HTTP status, model version or null].
LOAD = r"""
import json, os, sys, time, httpx
url, texts_path, stop_path, out_path, pause = sys.argv[1:6]
texts, pause, rows, n = json.load(open(texts_path)), float(pause) / 1000, [], 0
with httpx.Client(base_url=url, timeout=60) as c:
    while not os.path.exists(stop_path):
        text, rounds = texts[n % len(texts)], n // len(texts)
        n += 1
        sent, began = time.time(), time.perf_counter()
        r = c.post("/v1/collections/revdict/search",
                   json={"query": f"{text} {rounds}" if rounds else text, "k": 10})
        ms = (time.perf_counter() - began) * 1000
        rows.append([sent, ms, r.status_code,
                     r.json().get("model_version") if r.status_code == 200 else None])
        time.sleep(pause)
json.dump(rows, open(out_path, "w"))
"""


def read_data(data: Path, n: int) -> tuple[list[dict[str, str]], list[int], list[GoldenQuery]]:
    """``n`` docs-20k items (the dev queries' answers first, then the others in file order),
    their positions in the file (rows of the MiniLM cache), and the dev queries answered
    among them."""
    with lzma.open(data / "revdict" / "docs-20k.jsonl.xz", "rt", encoding="utf-8") as fh:
        every = [{"id": d["id"], "text": d["text"]} for d in map(json.loads, fh)]
    dev = [json.loads(line) for line in
           (data / "revdict" / "queries-dev.jsonl").read_text().splitlines() if line.strip()]
    answers = {r for q in dev for r in q["relevant"]}
    order = sorted(range(len(every)), key=lambda i: every[i]["id"] not in answers)[:n]
    docs = [every[i] for i in order]  # stable: file order kept within each part
    ids = {d["id"] for d in docs}
    queries = [GoldenQuery(q["query"], {r: 1.0 for r in q["relevant"] if r in ids})
               for q in dev if ids.intersection(q["relevant"])]
    return docs, order, queries


def cached_minilm(data: Path, rows: list[int]) -> np.ndarray | None:
    """The MiniLM vectors of ``rows`` from the shared cache (None when it cannot be made)."""
    try:
        from _minilm_cache import minilm_vectors

        vectors, _ = minilm_vectors(data, HERE / "out")
    except Exception as exc:  # noqa: BLE001 - the collection is embedded here instead
        print(f"(no MiniLM vector cache: {exc}; embedding the collection instead)")
        return None
    return np.ascontiguousarray(vectors[rows])


def setup(api: Embedops, docs: list[dict[str, str]], vectors: np.ndarray | None,
          queries: list[GoldenQuery], dim: int) -> None:
    """minilm@1, minilm-static@1 distilled from it, the collection on MiniLM, the golden set."""
    started = time.perf_counter()
    api.models.import_transformer("minilm", "minilm")
    api.models.distill("minilm@1", "minilm-static", DistillConfig(dim=dim))
    print(f"imported MiniLM and distilled it (dim {dim}) in {time.perf_counter() - started:.0f} s")
    api.collections.create(NAME, model="minilm@1")
    started = time.perf_counter()
    for at in range(0, len(docs), 1000):
        api.upsert_items(NAME, docs[at:at + 1000],
                         vectors=None if vectors is None else vectors[at:at + 1000])
    # A served index re-reads the writes of the 2 s before its build on every search
    # (search/sync.py's look-back margin): wait them out so the anchor is not slowed by it.
    time.sleep(2.5)
    api.build_index(NAME, "hnsw", quiet=True)
    print(f"{len(docs)} items {'stored' if vectors is not None else 'embedded'} with MiniLM "
          f"and indexed in {time.perf_counter() - started:.0f} s; {len(queries)} golden queries")
    db = MonitorDB(api.workspace, api)
    try:
        db.create_set("dev", NAME)
        db.add_queries("dev", queries)
    finally:
        db.close()


Timings = dict[str, list[float]]


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


def load_average() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


# -- the deployment: a server, a load process, a migrate process ----------------------------------
def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "embedops.cli.main", *args]


def start_server(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(cli("serve", "--no-auth", "--port", "0", "--json",
                                  "--log-level", "warning"),
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              env=env)
    assert server.stdout is not None
    line = server.stdout.readline()
    if not line:
        raise SystemExit("embedops serve did not start")
    return server, str(json.loads(line)["url"])


def migrate_process(env: dict[str, str], target: str, nice: int, rate: float | None
                    ) -> tuple[float, float, dict[str, Any]]:
    """Run ``embedops migrate`` to ``target`` as a process; (start, end, final state)."""
    args = ["migrate", NAME, "--to", target, "--golden", "dev", "--recall-tolerance", "1.0",
            "--min-traffic", "0", "--canary-seconds", "0", "--nice", str(nice), "--json"]
    if rate:
        args += ["--rate", f"{rate:g}/s"]
    began = time.time()
    done = subprocess.run(cli(*args), env=env, capture_output=True, text=True, check=False)
    ended = time.time()
    if done.returncode != 0:
        raise SystemExit(f"migrate to {target} failed ({done.returncode}): "
                         f"{done.stderr.strip().splitlines()[-1:]}")
    return began, ended, json.loads(done.stdout)


def split(rows: list[list[Any]], start: float, end: float) -> tuple[Timings, dict[int, int]]:
    """Latencies of the searches sent in [start, end), by answering version; status counts."""
    out: Timings = {}
    codes: dict[int, int] = {}
    for sent, ms, status, version in rows:
        if start <= sent < end:
            codes[status] = codes.get(status, 0) + 1
            if status == 200:
                out.setdefault(version, []).append(ms)
    return out, codes


def idle_window(seconds: float) -> tuple[float, float]:
    """Let the load run alone for ``seconds``; the window's (start, end)."""
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


def run_process_mode(args: argparse.Namespace, home: Path, queries: list[str]) -> None:
    env = {**os.environ, "EMBEDOPS_HOME": str(home), "EMBEDOPS_QUIET": "1",
           "PYTHONPATH": str(HERE.parent / "src")}
    texts_path, stop_path, out_path = home / "texts.json", home / "stop", home / "load.json"
    texts_path.write_text(json.dumps(queries))
    server, url = start_server(env)
    load = subprocess.Popen([sys.executable, "-c", LOAD, url, str(texts_path), str(stop_path),
                             str(out_path), str(args.pause_ms)], env=env)
    windows: list[tuple[float, float]] = []
    results: list[tuple[str, float, float, dict[str, Any]]] = []
    try:
        time.sleep(args.warm_s)  # the server's warm-up and the load's first requests
        for target in TARGETS:
            windows.append(idle_window(args.idle_s))
            print(f"{load_average()} before migrating to {target}", flush=True)
            began, ended, state = migrate_process(env, target, args.nice, args.rate)
            results.append((target, began, ended, state))
            time.sleep(1.0)  # the load's in-flight request, then the next idle window
        windows.append(idle_window(args.idle_s))  # MiniLM again: its idle brackets both runs
    finally:
        stop_path.touch()
        load.wait(timeout=120)
        server.terminate()
        server.wait(timeout=60)
    print(load_average() + " at the end")
    rows = json.loads(out_path.read_text())
    idle: Timings = {}
    for start, end in windows:
        part, _ = split(rows, start, end)
        for version, ms in part.items():
            idle.setdefault(version, []).extend(ms)
    for version, ms in sorted(idle.items()):
        print(f"search over HTTP, idle on {version} (anchor): {pct(ms)}")
    for target, began, ended, state in results:
        plan = state["plan"]
        during_ms, codes = split(rows, began, ended)
        print(f"migrate process {plan['source']} → {target} (nice {args.nice}): "
              f"{ended - began:.1f} s wall ({plan['missing']} items to embed; golden "
              f"recall@10 {state.get('golden', {}).get('recall')}); HTTP statuses {codes}")
        compare(during_ms, idle)


# -- the older measurement: the migration in a thread of the searching process ---------------------
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


def search_until(api: Embedops, queries: Queries, done: Callable[[int], bool],
                 pause_s: float) -> Timings:
    """Search latencies (ms) of a steady stream of queries (``pause_s`` apart), until
    ``done(searches so far)``, by the model version that answered."""
    out: Timings = {}
    n = 0
    while not done(n):
        started = time.perf_counter()
        version = api.search(NAME, queries.next(), k=10).model_version
        out.setdefault(version, []).append((time.perf_counter() - started) * 1000)
        n += 1
        time.sleep(pause_s)
    return out


def during(api: Embedops, target: str, queries: Queries, options: MigrateOptions,
           pause_s: float) -> tuple[float, Timings, Any]:
    """Migrate to ``target`` in a thread while searching: wall time, latencies, final state."""
    result: dict[str, Any] = {}

    def work() -> None:
        started = time.perf_counter()
        result["state"] = Migrations(api, who="bench").run(NAME, target, options)
        result["wall"] = time.perf_counter() - started

    thread = threading.Thread(target=work)
    thread.start()
    ms = search_until(api, queries, lambda _: not thread.is_alive(), pause_s)
    thread.join()
    state = result["state"]
    if state["step"] != "done":
        raise SystemExit(f"migration to {target} ended {state['step']}: {state.get('reason')}")
    return float(result["wall"]), ms, state


def run_thread_mode(args: argparse.Namespace, api: Embedops, texts: list[str]) -> None:
    options = replace(OPTIONS, rate=args.rate, nice=args.nice)
    queries = Queries(texts)
    idle: Timings = {}
    for target in TARGETS:
        api.search(NAME, "warm-up", k=10)  # load the served index before timing
        anchor = search_until(api, queries, lambda n: n >= args.idle_searches,
                              args.pause_ms / 1000)
        for version, ms in anchor.items():
            print(f"search in process, idle on {version} (anchor): {pct(ms)}")
        idle.update(anchor)
        print(load_average(), flush=True)
        wall, ms, state = during(api, target, queries, options, args.pause_ms / 1000)
        plan = state["plan"]
        print(f"migrate thread {plan['source']} → {target} (nice {args.nice}): {wall:.1f} s "
              f"wall ({plan['missing']} items to embed; golden recall@10 "
              f"{state.get('golden', {}).get('recall')})")
        compare(ms, idle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--n", type=int, default=20_000, help="items of docs-20k to use")
    parser.add_argument("--dim", type=int, default=256, help="dim of the distilled model")
    parser.add_argument("--mode", choices=("process", "thread"), default="process",
                        help="process: serve + load + migrate processes; thread: the "
                        "migration in a thread of the searching process (the old setup)")
    parser.add_argument("--nice", type=int, default=10, help="migrate --nice (0-19)")
    parser.add_argument("--idle-s", type=float, default=30.0,
                        help="seconds of idle searching before each migration (process mode)")
    parser.add_argument("--warm-s", type=float, default=5.0,
                        help="seconds of searching before the first idle window")
    parser.add_argument("--idle-searches", type=int, default=1000,
                        help="idle searches before each migration (thread mode)")
    parser.add_argument("--pause-ms", type=float, default=2.0,
                        help="pause between one search's answer and the next search")
    parser.add_argument("--rate", type=float, default=None,
                        help="backfill items per second (migrate --rate; default: unlimited)")
    parser.add_argument("--template", type=Path, default=None,
                        help="a folder keeping the prepared workspace (models, collection on "
                        "MiniLM, golden set): made on the first run, copied on later ones")
    args = parser.parse_args()
    print(f"{load_average()} at the start; {os.cpu_count()} CPUs; mode {args.mode}")
    docs, rows, golden = read_data(args.data, args.n)
    vectors = cached_minilm(args.data, rows)
    texts = [q.query for q in golden] + [d["text"][:120] for d in docs]
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "ws"
        if args.template is not None and (args.template / "catalog.db").exists():
            shutil.copytree(args.template, home)
            print(f"workspace copied from {args.template}")
        else:
            with Embedops(home=home) as api:
                setup(api, docs, vectors, golden, args.dim)
            if args.template is not None:
                shutil.copytree(home, args.template)
        with Embedops(home=home) as api:
            if args.mode == "thread":
                run_thread_mode(args, api, texts)
                return
        run_process_mode(args, home, texts)


if __name__ == "__main__":
    main()
