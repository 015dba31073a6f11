"""Rollout benchmark: what a model rollout costs the searches it runs beside.

Data: the reverse-dictionary docs-20k set and its dev queries. Two word2vec models (dims 64 and
48, different seeds) are trained on the first paragraphs of the shared English corpus and
published as w2v@1 (active) and w2v@2 (candidate). Measured in one process, as the server runs
them (the backfill thread shares the interpreter with the search threads):

1. search latency with no rollout (the anchor) vs the same searches through the rollout router
   with a 50% canary (routing, stickiness, per-version figures, overlap sampling);
2. search p50/p99 while a backfill runs unlimited vs rate-limited (the token bucket), and the
   backfill's throughput in each case;
3. golden recall@10 of both versions on the dev queries (the recall gate's inputs) and the time
   of one promotion (catch-up, gates, switch).

    .venv/bin/python bench/rollout.py [--data ../shared/data] [--queries 600]
"""

from __future__ import annotations

import argparse
import json
import lzma
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from embedops.api import Embedops  # noqa: E402
from embedops.config import Workspace  # noqa: E402
from embedops.lifecycle import GateConfig, Rollouts  # noqa: E402
from embedops.lifecycle.rollout import RolloutStore  # noqa: E402
from embedops.lifecycle.routing import Router  # noqa: E402


def read_data(data: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """docs-20k items and the dev queries."""
    with lzma.open(data / "revdict" / "docs-20k.jsonl.xz", "rt", encoding="utf-8") as fh:
        docs = [json.loads(x) for x in fh if x.strip()]
    queries = [json.loads(x) for x in (data / "revdict" / "queries-dev.jsonl").read_text()
               .splitlines() if x.strip()]
    return [{"id": d["id"], "text": d["text"]} for d in docs], queries


def publish_models(ws: Workspace, data: Path, paragraphs: int) -> None:
    from gensim.models import Word2Vec

    from embedops.models.registry import Registry
    from embedops.models.static import StaticVectors, publish_static
    from embedops.text.tokenize import TokenizerSpec

    spec = TokenizerSpec()
    with lzma.open(data / "corpus-en-13m.txt.xz", "rt", encoding="utf-8") as fh:
        sentences = [spec.tokenize(next(fh)) for _ in range(paragraphs)]
    for dim, seed in ((64, 1), (48, 2)):
        model = Word2Vec(sentences, vector_size=dim, min_count=3, epochs=2, workers=2, seed=seed)
        publish_static(Registry(ws), "w2v", StaticVectors.from_gensim(model.wv),
                       kind="word2vec", spec=spec)


def latencies(fn: Any, queries: list[str]) -> np.ndarray:
    out = []
    for i, q in enumerate(queries):
        started = time.perf_counter()
        fn(i, q)
        out.append((time.perf_counter() - started) * 1000)
    return np.asarray(out)


def pct(ms: np.ndarray) -> str:
    return f"p50 {np.percentile(ms, 50):.2f} ms, p99 {np.percentile(ms, 99):.2f} ms"


def collection(api: Embedops, name: str, docs: list[dict[str, Any]]) -> None:
    api.collections.create(name, model="w2v@1")
    for start in range(0, len(docs), 2000):
        api.upsert_items(name, docs[start:start + 2000])
    # Served indexes re-read the writes of the 2 s before their build on every search
    # (search/sync.py's look-back margin); wait them out so the anchor is not slowed by it.
    time.sleep(2.5)
    api.build_index(name, "hnsw", quiet=True)


def during_backfill(api: Embedops, name: str, rate: float | None, queries: list[str]
                    ) -> tuple[np.ndarray, float]:
    """Search latencies while ``name`` backfills w2v@2 at ``rate``; and items/s backfilled."""
    rollouts = Rollouts(api, who="bench")
    rollouts.start(name, "w2v@2", rate=rate)
    result: dict[str, float] = {}

    def work() -> None:
        started = time.perf_counter()
        state = rollouts.run_backfill(name, quiet=True)
        result["rate"] = state.backfill["total"] / (time.perf_counter() - started)

    thread = threading.Thread(target=work)
    thread.start()
    ms = []
    i = 0
    while thread.is_alive():
        started = time.perf_counter()
        api.search(name, queries[i % len(queries)], k=10)
        ms.append((time.perf_counter() - started) * 1000)
        i += 1
        time.sleep(0.002)  # a steady stream of requests, not a busy loop
    thread.join()
    return np.asarray(ms), result["rate"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--queries", type=int, default=600)
    parser.add_argument("--paragraphs", type=int, default=30_000)
    args = parser.parse_args()
    docs, dev = read_data(args.data)
    texts = [q["query"] for q in dev][: args.queries]
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp) / "ws").ensure()
        t0 = time.perf_counter()
        publish_models(ws, args.data, args.paragraphs)
        print(f"trained two word2vec models in {time.perf_counter() - t0:.1f} s")
        with Embedops(ws) as api:
            run(api, docs, dev, texts)


def run(api: Embedops, docs: list[dict[str, Any]], dev: list[dict[str, Any]],
        texts: list[str]) -> None:
    for name in ("routed", "fast", "limited"):
        collection(api, name, docs)
    # 1. routing overhead: the same searches, direct (anchor) and through a 50% canary.
    router = Router(RolloutStore(api.workspace))
    rollouts = Rollouts(api, who="bench", stats=router.stats("routed"), swap=router.swap)
    rollouts.start("routed", "w2v@2", share=0.5, gates=GateConfig(min_requests=50))
    rollouts.run_backfill("routed", quiet=True)
    api.search("routed", texts[0], model_version="w2v@2")  # load the candidate's index
    direct = latencies(lambda i, q: api.search("routed", q, k=10), texts)
    routed = latencies(lambda i, q: router.search(
        "routed", f"caller{i % 16}", None, None,
        lambda v: api.search("routed", q, k=10, model_version=v)), texts)
    figures = router.stats("routed").to_dict()
    print(f"direct search (anchor): {pct(direct)}")
    print(f"through the 50% canary router: {pct(routed)}; ratio p50 "
          f"{np.percentile(routed, 50) / np.percentile(direct, 50):.2f}, p99 "
          f"{np.percentile(routed, 99) / np.percentile(direct, 99):.2f}")
    print(f"  per version: {json.dumps(figures)}")
    # 3. golden recall of both versions, and one promotion.
    golden(api, dev)
    started = time.perf_counter()
    rollouts.promote("routed")
    print(f"promote (catch-up + gates + switch): {(time.perf_counter() - started) * 1000:.1f} ms")
    # 2. backfill beside searches: unlimited, then limited to a third of that rate.
    idle = latencies(lambda i, q: api.search("fast", q, k=10), texts)
    fast_ms, fast_rate = during_backfill(api, "fast", None, texts)
    limit = round(fast_rate / 3)
    slow_ms, slow_rate = during_backfill(api, "limited", limit, texts)
    print(f"search, no backfill: {pct(idle)}")
    print(f"search during unlimited backfill ({fast_rate:.0f} items/s): {pct(fast_ms)}")
    print(f"search during backfill at --rate {limit}/s ({slow_rate:.0f} items/s): "
          f"{pct(slow_ms)}")
    print(f"p99 ratio unlimited/limited: "
          f"{np.percentile(fast_ms, 99) / np.percentile(slow_ms, 99):.2f}")


def golden(api: Embedops, dev: list[dict[str, Any]]) -> None:
    from embedops.evaluate.retrieval import evaluate_run

    relevant = [{r: 1.0 for r in q["relevant"]} for q in dev]
    for version in ("w2v@1", "w2v@2"):
        ranked = [[h.id for h in api.search("routed", q["query"], k=10,
                                            model_version=version).hits] for q in dev]
        scores = evaluate_run(ranked, relevant, (10,)).scores
        print(f"golden on {len(dev)} dev queries, {version}: recall@10 "
              f"{scores.get('recall@10', 0.0):.4f}, mrr@10 {scores.get('mrr@10', 0.0):.4f}")


if __name__ == "__main__":
    main()
