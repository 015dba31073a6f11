"""Distilled static model vs its transformer (all-MiniLM-L6-v2) on the reverse dictionary.

Side by side in one run: sentences/s encoding the docs-20k definitions and recall@10 / MRR@10 of
the dev queries (WordNet glosses → Webster headwords) with exact inner-product search. The anchor
is sentence-transformers itself; embedops' own transformer encoder (ONNX int8) is shown too.
Prints ratios; reads ``--data`` (default ``../shared/data`` next to the repository).

    .venv/bin/python bench/distill.py [--data DIR] [--dim 256] [--max-words 100000]
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
ANCHOR = "sentence-transformers MiniLM (anchor)"
ONNX = "embedops MiniLM onnx-int8"
STUDENT = "embedops distilled static"


def _load(data: Path) -> tuple[list[str], list[str], list[str], list[list[str]]]:
    with lzma.open(data / "revdict" / "docs-20k.jsonl.xz", "rt", encoding="utf-8") as fh:
        docs = [json.loads(line) for line in fh]
    with open(data / "revdict" / "queries-dev.jsonl", encoding="utf-8") as fh:
        queries = [json.loads(line) for line in fh]
    return (
        [d["id"] for d in docs],
        [d["text"] for d in docs],
        [q["query"] for q in queries],
        [q["relevant"] for q in queries],
    )


def _timed(encode, texts: list[str]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    vectors = np.asarray(encode(texts), dtype=np.float32)
    return vectors, len(texts) / (time.perf_counter() - start)


def _scores(ids, doc_vecs, query_vecs, relevant) -> dict[str, float]:
    from embedops.evaluate.retrieval import evaluate_run

    top = np.argsort(-(query_vecs @ doc_vecs.T), axis=1)[:, :10]
    run = evaluate_run([[ids[j] for j in row] for row in top], relevant, ks=(10,))
    return {"recall@10": run["recall@10"], "mrr@10": run["mrr@10"]}


def _speeds(encoders, docs: list[str], n_slow: int, rounds: int) -> dict[str, float]:
    """Best docs/s of each encoder over ``rounds`` interleaved rounds (the machine is shared, so
    interleaving exposes all encoders to the same background load). Transformers encode the
    first ``n_slow`` docs, the static model all of them.
    """
    best: dict[str, float] = {}
    for _ in range(rounds):
        for label, encode in encoders.items():
            texts = docs if label == STUDENT else docs[:n_slow]
            best[label] = max(best.get(label, 0.0), _timed(encode, texts)[1])
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--max-words", type=int, default=100_000)
    parser.add_argument(
        "--speed-docs",
        type=int,
        default=500,
        help="docs the transformers encode per timing round (static: all 20k)",
    )
    parser.add_argument("--rounds", type=int, default=2, help="interleaved timing rounds")
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("EMBEDOPS_QUIET", "1")
    sys.path.insert(0, str(REPO / "src"))
    from embedops.config import Workspace
    from embedops.models.loader import load_encoder
    from embedops.models.registry import Registry
    from embedops.models.transformer import TransformerEncoder, import_transformer
    from embedops.train.distill import DistillConfig, distill
    from embedops.train.finetune import load_sentence_transformer

    ids, docs, queries, relevant = _load(args.data)
    registry = Registry(Workspace(Path(tempfile.mkdtemp(prefix="bench-distill-"))))
    teacher = import_transformer(registry, "minilm", "minilm", onnx=True)
    start = time.perf_counter()
    config = DistillConfig(dim=args.dim, max_corpus_words=args.max_words)
    student_mv = distill(
        registry, teacher.ref, "minilm-static", config, corpus=args.data / "corpus-en-13m.txt.xz"
    )
    print(
        f"distill: {time.perf_counter() - start:.0f} s, vocab {student_mv.manifest['vocab_size']}, "
        f"dim {student_mv.dim}"
    )

    st = load_sentence_transformer(teacher)
    encoders = {
        ANCHOR: lambda t: st.encode(
            t, batch_size=64, normalize_embeddings=True, show_progress_bar=False
        ),
        ONNX: TransformerEncoder.from_version(teacher, "onnx-int8").encode,
        STUDENT: load_encoder(student_mv, registry).encode,
    }
    quality = {
        label: _scores(ids, np.asarray(encoders[label](docs)), encoders[label](queries), relevant)
        for label in (ANCHOR, STUDENT)
    }
    speeds = _speeds(encoders, docs, args.speed_docs, args.rounds)
    for label, speed in speeds.items():
        q = quality.get(label)
        extra = f"  recall@10 {q['recall@10']:.3f}  mrr@10 {q['mrr@10']:.3f}" if q else ""
        print(f"{label:40s} {speed:10.0f} docs/s{extra}")
    print(
        f"speed ratio student/anchor: {speeds[STUDENT] / speeds[ANCHOR]:.0f}x "
        f"(vs embedops onnx-int8: {speeds[STUDENT] / speeds[ONNX]:.0f}x)"
    )
    print(f"recall@10 kept: {quality[STUDENT]['recall@10'] / quality[ANCHOR]['recall@10']:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
