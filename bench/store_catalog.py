"""Store throughput: the embedops catalog (plain and encrypted) against ChromaDB's persistent
store, side by side on the same real texts and the same vectors.

Items are the revdict dictionary entries (docs-20k: id = headword, text = definition,
metadata = {"len": characters}); vectors are seeded random float32 of dim 384 (the size of
MiniLM's), so only storage is measured, not embedding. Timed: writing all items with vectors
in batches, reading every vector back, fetching 2,000 items by id, and (embedops) the idempotence
check of a re-ingest. ChromaDB also builds its HNSW graph while writing, which embedops leaves to
``embedops.index``: the write ratio includes that difference.

    .venv/bin/python bench/store_catalog.py [--data ../shared/data] [--limit 20000]
"""

from __future__ import annotations

import argparse
import json
import lzma
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from embedops.config import Workspace  # noqa: E402
from embedops.store import Catalog, ItemIn  # noqa: E402

DIM, BATCH, LOOKUPS = 384, 1000, 2000


def read_items(path: Path, limit: int) -> list[ItemIn]:
    """ItemIn of the first ``limit`` entries of a revdict docs .jsonl.xz file (first id wins)."""
    out: dict[str, ItemIn] = {}
    with lzma.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if row["id"] not in out:
                out[row["id"]] = ItemIn(row["id"], row["text"], {"len": len(row["text"])})
            if len(out) >= limit:
                break
    return list(out.values())


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def run_embedops(root: Path, items: list[ItemIn], vecs: np.ndarray, lookup: list[str],
                 encrypted: bool) -> dict[str, float]:
    key = secrets.token_bytes(32) if encrypted else None
    cat = Catalog(Workspace(root / ("enc" if encrypted else "plain")), key=key)
    cat.create_collection("bench", "bench@1", dim=DIM, encrypted=encrypted)

    def write() -> None:
        for s in range(0, len(items), BATCH):
            cat.upsert("bench", items[s : s + BATCH], {"bench@1": vecs[s : s + BATCH]})

    out = {"write_s": timed(write)[0]}
    out["read_vectors_s"], (ids, got) = timed(lambda: cat.load_vectors("bench", "bench@1"))
    assert got.shape == vecs.shape and np.array_equal(got, vecs)
    out["get_items_s"], fetched = timed(lambda: cat.get_items("bench", lookup))
    assert len(fetched) == len(lookup)
    out["plan_rerun_s"], todo = timed(
        lambda: [cat.plan_upsert("bench", items[s : s + BATCH])
                 for s in range(0, len(items), BATCH)])
    assert not any(todo)
    cat.close()
    return out


def run_chroma(root: Path, items: list[ItemIn], vecs: np.ndarray,
               lookup: list[str]) -> dict[str, float]:
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(path=str(root / "chroma"),
                                       settings=Settings(anonymized_telemetry=False))
    coll = client.create_collection("bench", embedding_function=None,
                                    metadata={"hnsw:space": "cosine"})

    def write() -> None:
        for s in range(0, len(items), BATCH):
            part = items[s : s + BATCH]
            coll.add(ids=[it.id for it in part], documents=[it.text for it in part],
                     metadatas=[it.metadata for it in part], embeddings=vecs[s : s + BATCH])

    out = {"write_s": timed(write)[0]}
    out["read_vectors_s"], got = timed(lambda: coll.get(include=["embeddings"]))
    assert len(got["ids"]) == len(items)
    out["get_items_s"], fetched = timed(
        lambda: coll.get(ids=lookup, include=["documents", "metadatas"]))
    assert len(fetched["ids"]) == len(lookup)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--limit", type=int, default=20_000)
    args = parser.parse_args()
    items = read_items(args.data / "revdict" / "docs-20k.jsonl.xz", args.limit)
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((len(items), DIM)).astype(np.float32)
    lookup = [items[i].id for i in rng.choice(len(items), min(LOOKUPS, len(items)), False)]
    root = Path(tempfile.mkdtemp(prefix="bench-store-"))
    try:
        results = {
            "embedops": run_embedops(root, items, vecs, lookup, encrypted=False),
            "embedops-encrypted": run_embedops(root, items, vecs, lookup, encrypted=True),
            "chromadb": run_chroma(root, items, vecs, lookup),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    n = len(items)
    print(f"{n} items, dim {DIM}, batches of {BATCH}; seconds (items/s)")
    for name, res in results.items():
        cells = [f"{k}={v:.2f} ({n / v:,.0f}/s)" if k != "get_items_s"
                 else f"{k}={v:.3f}" for k, v in res.items()]
        print(f"  {name:20s} " + "  ".join(cells))
    anchor = results["chromadb"]
    for name in ("embedops", "embedops-encrypted"):
        ratios = {k: anchor[k] / v for k, v in results[name].items() if k in anchor}
        print(f"  speed-up {name} / chromadb: "
              + "  ".join(f"{k[:-2]} x{r:.2f}" for k, r in ratios.items()))


if __name__ == "__main__":
    main()
