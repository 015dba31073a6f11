"""Server time of each console page on the revdict docs-20k collection (target: < 300 ms), and
the size of the projection page (target: < 5 MB whatever the collection's size).

The workspace: docs-20k as a collection (metadata: the headword's initial and the definition's
word count), a static word2vec model trained by ``Embedops.models.train`` on those texts (two
seeds, lee-style @1 and @2: MiniLM would need ~10 min of encoding on a loaded 2-core machine,
and the console's cost is its own, not the encoder's), an HNSW index, a canary rollout of @2,
a golden set of 100 dev queries run 5 times, and 3 drift reports. It is built once under
``bench/out/console-ws``. Beside it, a synthetic collection ``synth`` of
``--projection-items`` items (default 100,000: texts of 6-12 words drawn from the docs'
vocabulary, embedded by the static revdict@1 model, a ``group`` field of 10 values) times the
projection page where only a sample of a large collection can be drawn (target: < 5 MB).

Server time is measured by an ASGI wrapper around the app (first byte in to last byte out),
so the HTTP client's own time is not counted; each page is requested ``--runs`` times after 2
warm-up requests, signed in with a read key. The anchor is the JSON API: the search page runs
4 modes plus the hybrid explanation, so it is shown next to 4 ``/v1/.../search`` calls.

    .venv/bin/python bench/console.py [--data ../shared/data] [--runs 20]
        [--docs 20000] [--projection-items 100000]

``--docs`` and ``--projection-items`` make a small run (a smoke test of the script: its
figures are not the targets' figures).
"""

from __future__ import annotations

import argparse
import json
import lzma
import re
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))

COLLECTION = "docs"
SYNTH = "synth"
TARGET_MS = 300.0
TARGET_BYTES = 5 * 1024 * 1024
PAGES = {
    "overview": "/ui/overview",
    "search (4 modes + explain)": "/ui/search?collection=docs&q={q}&k=10",
    "words": "/ui/words?op=neighbours&model=revdict%401&word=water",
    "projection (2,000 points)": "/ui/projection?collection=docs&color=initial",
    "projection (5,000 points)": "/ui/projection?collection=docs&n=5000&color=words",
    "projection + drift window": "/ui/projection?collection=docs&window=30d",
    "quality": "/ui/quality?set=dev",
    "drift": "/ui/drift?collection=docs",
    "rollouts": "/ui/rollouts?collection=docs",
    "models": "/ui/models?show=revdict%402",
    "models: compare (300 texts)": "/ui/models/compare?a=revdict%401&b=revdict%402"
                                   "&collection=docs&n=300",
    "projection synth (2,000 points)": f"/ui/projection?collection={SYNTH}&color=group",
    "projection synth (5,000 points)": f"/ui/projection?collection={SYNTH}&n=5000&color=group",
}


def read_data(data: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """docs-20k as items, and the dev queries whose headword is among them."""
    with lzma.open(data / "revdict" / "docs-20k.jsonl.xz", "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    items = [{"id": r["id"], "text": r["text"],
              "metadata": {"initial": r["id"][:1].lower(), "words": len(r["text"].split())}}
             for r in rows]
    ids = {r["id"] for r in rows}
    queries = [json.loads(x) for x in (data / "revdict" / "queries-dev.jsonl").read_text(
        encoding="utf-8").splitlines() if x.strip()]
    return items, [q for q in queries if set(q["relevant"]) & ids]


def build(home: Path, items: list[dict[str, Any]], queries: list[dict[str, Any]]) -> None:
    """The bench workspace (kept between runs; rebuilt when its marker is missing)."""
    from embedops.engine import Embedops
    from embedops.engine.options import TrainConfig
    from embedops.lifecycle import Rollouts
    from embedops.monitor.checks import collection_drift
    from embedops.monitor.db import MonitorDB
    from embedops.monitor.golden import make_query, run_golden

    marker = home / "console-bench.json"
    if marker.exists() and json.loads(marker.read_text()).get("items") == len(items):
        return
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    corpus = home / "corpus.txt"
    corpus.write_text("\n".join(i["text"] for i in items), encoding="utf-8")
    with Embedops(home=home / "ws") as api:
        for seed in (1, 2):
            api.models.train(corpus, "revdict", TrainConfig(dim=100, epochs=5, min_count=2,
                                                             seed=seed, redact=()))
        api.collections.create(COLLECTION, model="revdict@1")
        for start in range(0, len(items), 2000):
            api.upsert_items(COLLECTION, items[start:start + 2000])
        api.build_index(COLLECTION, "hnsw", quiet=True)
        rollouts = Rollouts(api, who="bench")
        rollouts.start(COLLECTION, "revdict@2", share=0.1)
        rollouts.run_backfill(COLLECTION, quiet=True)
        db = MonitorDB(api.workspace)
        db.create_set("dev", COLLECTION, "revdict dev queries")
        db.add_queries("dev", [make_query(q["query"], q["relevant"]) for q in queries[:100]])
        for _ in range(5):
            run_golden(api, db, COLLECTION, "dev", (1, 10), quiet=True)
        texts = [i["text"] for i in items]
        for cut in (500, 1000, 1500):
            collection_drift(api, COLLECTION, texts[:cut], texts[-cut:], db=db)
    marker.write_text(json.dumps({"items": len(items)}))


def build_synthetic(home: Path, items: list[dict[str, Any]], n: int, seed: int = 0) -> None:
    """Collection ``synth``: ``n`` texts of 6-12 words drawn from the docs' vocabulary,
    embedded by revdict@1 (rebuilt when its marker names another size)."""
    import numpy as np

    from embedops.engine import Embedops

    marker = home / "console-synth.json"
    if marker.exists() and json.loads(marker.read_text()).get("items") == n:
        return
    vocab = np.asarray(sorted({w for i in items for w in i["text"].lower().split()}))
    rng = np.random.default_rng(seed)
    with Embedops(home=home / "ws") as api:
        if SYNTH in {c.name for c in api.collections.list()}:
            api.collections.delete(SYNTH)
        api.collections.create(SYNTH, model="revdict@1")
        for start in range(0, n, 5000):
            batch = []
            for i in range(start, min(n, start + 5000)):
                words = rng.choice(vocab, int(rng.integers(6, 13)))
                batch.append({"id": f"s{i}", "text": " ".join(words),
                              "metadata": {"group": f"g{i % 10}", "words": len(words)}})
            api.upsert_items(SYNTH, batch)
        api.build_index(SYNTH, "flat", quiet=True)  # served at start, not rebuilt there
    marker.write_text(json.dumps({"items": n}))


class Timed:
    """ASGI wrapper: server time of every request, by path and query."""

    def __init__(self, app: Any) -> None:
        self.app, self.times = app, {}  # type: dict[str, list[float]]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        await self.app(scope, receive, send)
        key = scope["path"] + ("?" + scope["query_string"].decode() if scope["query_string"]
                               else "")
        self.times.setdefault(key, []).append((time.perf_counter() - started) * 1000)


def measure(base: str, timed: Timed, key: str, runs: int) -> dict[str, Any]:
    """Server time (median, p95, max) and page size of each console page."""
    import httpx
    from console_helpers import signed_in

    out: dict[str, Any] = {}
    query = "a building where people can see works of art"
    with signed_in(base, key) as client:
        for name, path in PAGES.items():
            path = path.format(q=query.replace(" ", "+"))
            for _ in range(2):
                client.get(path)
            timed.times.clear()
            sizes = []
            for _ in range(runs):
                resp = client.get(path)
                assert resp.status_code == 200, (path, resp.text[:500])
                assert 'class="error"' not in resp.text, re.findall(
                    r'class="error"[^>]*>(.*?)</div>', resp.text, re.S)[:1]
                sizes.append(len(resp.content))
            times = sorted(next(iter(timed.times.values())))
            out[name] = {"median_ms": statistics.median(times),
                         "p95_ms": times[int(0.95 * (len(times) - 1))], "max_ms": times[-1],
                         "bytes": max(sizes)}
        body = {"query": query, "k": 10}
        api_times = []
        headers = {"X-API-Key": key}
        with httpx.Client(base_url=base, timeout=60, headers=headers) as api:
            for _ in range(runs):
                timed.times.clear()
                for mode in ("dense", "lexical", "hybrid", "two_stage"):
                    api.post(f"/v1/collections/{COLLECTION}/search", json={**body, "mode": mode})
                api_times.append(sum(sum(v) for v in timed.times.values()))
        out["anchor: 4 API searches"] = {"median_ms": statistics.median(api_times),
                                         "p95_ms": sorted(api_times)[int(0.95 * (runs - 1))],
                                         "max_ms": max(api_times), "bytes": 0}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "console-ws")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--docs", type=int, default=None,
                        help="Use the first N docs only (a small run; default all 20k).")
    parser.add_argument("--projection-items", type=int, default=100_000,
                        help="Items of the synthetic collection the projection is timed on.")
    args = parser.parse_args()
    started = time.perf_counter()
    items, queries = read_data(args.data)
    if args.docs:
        items = items[:args.docs]
        kept = {i["id"] for i in items}
        queries = [q for q in queries if set(q["relevant"]) & kept] or [
            {"query": " ".join(i["text"].split()[:8]), "relevant": [i["id"]]} for i in items]
    build(args.out, items, queries)
    build_synthetic(args.out, items, args.projection_items)
    print(f"workspace ready in {time.perf_counter() - started:.1f} s ({len(items)} items, "
          f"{args.projection_items} synthetic)")

    from serve_helpers import running_server

    from embedops.serve.app import create_app
    from embedops.serve.keys import KeyStore
    from embedops.serve.settings import ServeSettings

    key, _ = KeyStore(_workspace(args.out)).create("read", "console-bench")
    app = create_app(ServeSettings(home=str(args.out / "ws")))
    timed = Timed(app)
    with running_server(timed) as base:
        results = measure(base, timed, key, args.runs)
    print(f"\n{'page':<30} {'median ms':>10} {'p95 ms':>8} {'max ms':>8} {'KB':>8}"
          f" {'median/target':>14}")
    for name, r in results.items():
        print(f"{name:<30} {r['median_ms']:>10.1f} {r['p95_ms']:>8.1f} {r['max_ms']:>8.1f} "
              f"{r['bytes'] / 1024:>8.0f} {r['median_ms'] / TARGET_MS:>13.2f}x")
    heavy = [name for name, r in results.items() if r["bytes"] > TARGET_BYTES]
    print(f"\npages over {TARGET_BYTES // 2**20} MB: {', '.join(heavy) or 'none'}")
    search = results["search (4 modes + explain)"]["median_ms"]
    anchor = results["anchor: 4 API searches"]["median_ms"]
    print(f"\nsearch page / 4 API searches: {search / anchor:.2f}x")


def _workspace(out: Path) -> Any:
    from embedops.config import Workspace

    return Workspace(out / "ws")


if __name__ == "__main__":
    main()
