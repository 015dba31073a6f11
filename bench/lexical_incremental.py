"""Cost of one write on the next lexical query: incremental BM25 vs today's full rebuild.

Documents: the first 100k WordNet glosses shipped in ``src/embedops/data`` (real short text);
queries: the reverse-dictionary dev queries when ``--data`` has them, else glosses' first words.
Side by side in one process, single thread:

* before (full rebuild): what ``CollectionView`` did after any write, a bm25s ``LexicalIndex``
  built over every live document (re-reading the items from the catalog not counted);
* after (incremental): ``IncrementalLexical.delete`` + ``add`` for one upserted document, then
  the same query; the write's cost is (write + query) - query alone;
* query latency of each with no write in between (p50 / p99), and whether the top-10 agree;
* end to end through ``CollectionView`` over a real SQLite catalog (``--catalog``): one
  ``Catalog.upsert`` of one item, then ``view.sync()`` + ``view.lexical(q)``, against the same
  sync + query with no write; and the re-read of every item the old view made after a write.

``--file docs.jsonl`` takes the documents from a JSONL file of ``{"text": ...}`` rows instead
(e.g. the 1M corpus sentences + glosses that ``bench/ingest_scale.py`` writes), and the peak
resident memory of the process is printed after each step.

Usage: ``python bench/lexical_incremental.py [--n 100000] [--data ../shared/data]
[--file bench/out/serve-scale/docs-1000000.jsonl]``.
"""

from __future__ import annotations

import argparse
import json
import lzma
import time
from importlib import resources
from pathlib import Path

import numpy as np

from embedops.search.lexical import IncrementalLexical, LexicalIndex


def glosses(n: int) -> list[str]:
    """The first ``n`` WordNet glosses (lemmas prepended, as a dictionary entry reads)."""
    path = resources.files("embedops.data") / "wordnet-glosses.jsonl.xz"
    out = []
    with lzma.open(str(path), "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            out.append(" ".join(row["lemmas"]) + ": " + row["gloss"])
            if len(out) == n:
                break
    return out


def from_file(path: Path, n: int) -> list[str]:
    out = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            out.append(json.loads(line)["text"])
            if len(out) == n:
                break
    return out


def peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def queries(data: Path, docs: list[str], m: int) -> list[str]:
    """Reverse-dictionary dev queries, or the first words of random glosses."""
    path = data / "revdict" / "queries-dev.jsonl"
    if path.exists():
        with open(path, encoding="utf-8") as fh:
            return [json.loads(line)["query"] for line in fh if line.strip()][:m]
    rng = np.random.default_rng(0)
    return [" ".join(docs[i].split(": ")[-1].split()[:4]) for i in rng.integers(0, len(docs), m)]


def ms(values: list[float]) -> str:
    """p50 / p99 in milliseconds."""
    arr = np.asarray(values) * 1e3
    return f"p50 {np.percentile(arr, 50):.2f} ms, p99 {np.percentile(arr, 99):.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--data", type=Path, default=Path(__file__).parent / ".." / ".." / "shared"
                        / "data")  # fmt: skip
    parser.add_argument("--catalog", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--file", type=Path, default=None)
    args = parser.parse_args()
    docs = from_file(args.file, args.n) if args.file else glosses(args.n)
    qs = queries(args.data, docs, args.queries)
    n = len(docs)
    print(f"{n} documents, {len(qs)} queries")

    print(f"peak RSS with the documents read: {peak_mb():.0f} MB")
    # the incremental index first, so the peak after it is its own (bm25s's build comes after)
    started = time.perf_counter()
    inc = IncrementalLexical()
    inc.add(list(range(n)), docs)
    inc_build = time.perf_counter() - started
    print(f"peak RSS after the incremental build: {peak_mb():.0f} MB")
    started = time.perf_counter()
    full = LexicalIndex([str(i) for i in range(n)], docs)
    rebuild = time.perf_counter() - started
    print(f"build from scratch: bm25s {rebuild:.2f} s, "
          f"incremental (initial load) {inc_build:.2f} s; peak RSS {peak_mb():.0f} MB")

    alive = np.ones(n, dtype=bool)
    t_full, t_inc, agree = [], [], []
    for q in qs:
        t0 = time.perf_counter()
        a = full.search(q, 10, alive)
        t1 = time.perf_counter()
        b = inc.search(q, 10, alive)
        t2 = time.perf_counter()
        t_full.append(t1 - t0)
        t_inc.append(t2 - t1)
        agree.append(len({p for p, _ in a} & {p for p, _ in b}) / max(1, len(a)))
    print(f"query, no write: bm25s {ms(t_full)}; incremental {ms(t_inc)}; "
          f"top-10 overlap {np.mean(agree):.3f}")

    rng = np.random.default_rng(1)
    writes, after, slot = [], [], n
    mask = np.ones(n + len(qs), dtype=bool)
    for q in qs:
        victim = int(rng.integers(0, n))
        t0 = time.perf_counter()
        inc.delete([victim])
        inc.add([slot], [docs[victim] + " revised"])
        t1 = time.perf_counter()
        mask[victim] = False
        inc.search(q, 10, mask[: slot + 1])
        t2 = time.perf_counter()
        writes.append(t1 - t0)
        after.append(t2 - t1)
        slot += 1
    extra = np.median(np.asarray(writes) + np.asarray(after)) - np.median(t_inc)
    print(f"one upsert, incremental: write {ms(writes)}; next query {ms(after)}; "
          f"extra on the next query vs no write: {extra * 1e3:.2f} ms (median)")
    print(f"one upsert, full rebuild (before): {rebuild * 1e3:.0f} ms on the next query "
          f"-> {rebuild / max(extra, 1e-6):.0f}x")
    if args.catalog:
        through_view(docs, qs)


def through_view(docs: list[str], qs: list[str]) -> None:
    """One write's cost on the next lexical query through CollectionView and a real catalog."""
    import tempfile

    from embedops.config import Workspace
    from embedops.search.view import CollectionView
    from embedops.store.catalog import Catalog
    from embedops.store.models import ItemIn

    with tempfile.TemporaryDirectory() as tmp:
        catalog = Catalog(Workspace(Path(tmp)))
        catalog.create_collection("g", model_version="none@1", dim=4)
        for start in range(0, len(docs), 10_000):
            part = docs[start : start + 10_000]
            catalog.upsert("g", [ItemIn(f"d{start + i}", t, {}) for i, t in enumerate(part)], {})
        t0 = time.perf_counter()
        view = CollectionView(catalog, "g")
        reread = time.perf_counter() - t0
        view.lexical("warm up", 10)
        idle, written = [], []
        for n, q in enumerate(qs):
            t0 = time.perf_counter()
            view.sync()
            view.lexical(q, 10)
            idle.append(time.perf_counter() - t0)
            catalog.upsert("g", [ItemIn(f"d{n * 7}", docs[n * 7] + " edited", {})], {})
            t0 = time.perf_counter()
            view.sync()
            view.lexical(q, 10)
            written.append(time.perf_counter() - t0)
        extra = (np.median(written) - np.median(idle)) * 1e3
        print(f"through CollectionView + SQLite catalog: sync+query after one upsert "
              f"{ms(written)}; with no write {ms(idle)}; extra {extra:.2f} ms (median); "
              f"the old view re-read every item ({reread * 1e3:.0f} ms) and rebuilt BM25 instead")
        catalog.close()


if __name__ == "__main__":
    main()
