"""Distilled static model vs its transformer (all-MiniLM-L6-v2) on the reverse dictionary.

Side by side in one run: sentences/s encoding the docs-20k definitions (interleaved rounds) and
recall@10 / MRR@10 of the dev queries (WordNet glosses → Webster headwords) with exact
inner-product search, over docs-20k and over a 5,000-document subset of it (every answer of the
dev queries plus seeded random distractors). Recall is also shown per half of the dev queries
(split by a hash of the synset: tune on A, judge on B). The anchor is sentence-transformers
itself; its vectors come from the shared cache ``bench/out/minilm-*.npy`` (``_minilm_cache``),
and the vocabulary's MiniLM word vectors are cached under ``bench/out/distill/`` (with
``--fit-texts N`` the teacher vectors of the N fitting lines are computed on each run, not
cached). embedops' own transformer encoder (ONNX int8) is timed as well.

    chrt --idle 0 nice -n 19 .venv/bin/python bench/distill.py [--data DIR] [--dim 256]
        [--fit-texts 0] [--sif 3e-4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
ANCHOR = "sentence-transformers MiniLM (anchor)"
ONNX = "embedops MiniLM onnx-int8"
STUDENT = "embedops distilled static"


def _load(data: Path) -> tuple[list[str], list[str], list[str], list[list[str]], list[str]]:
    with lzma.open(data / "revdict" / "docs-20k.jsonl.xz", "rt", encoding="utf-8") as fh:
        docs = [json.loads(line) for line in fh if line.strip()]
    with open(data / "revdict" / "queries-dev.jsonl", encoding="utf-8") as fh:
        queries = [json.loads(line) for line in fh if line.strip()]
    return (
        [d["id"] for d in docs],
        [d["text"] for d in docs],
        [q["query"] for q in queries],
        [q["relevant"] for q in queries],
        [q["synset"] for q in queries],
    )


def subset_5k(ids: list[str], relevant: list[list[str]], seed: int = 0) -> np.ndarray:
    """Rows of a 5,000-document subset: every answer of the queries plus random distractors."""
    needed = {r for rel in relevant for r in rel}
    must = [i for i, x in enumerate(ids) if x in needed]
    rest = [i for i, x in enumerate(ids) if x not in needed]
    extra = np.random.default_rng(seed).choice(rest, 5000 - len(must), replace=False)
    return np.array(sorted(must + extra.tolist()))


def halves(synsets: list[str]) -> np.ndarray:
    """0 (A, tuned on) or 1 (B, held out) per query, from a hash of its synset."""
    return np.array([int(hashlib.sha256(s.encode()).hexdigest(), 16) % 2 for s in synsets])


def _scores(ids, doc_vecs, query_vecs, relevant, half) -> dict[str, float]:
    from embedops.evaluate.retrieval import evaluate_run

    top = np.argsort(-(query_vecs @ doc_vecs.T), axis=1)[:, :10]
    out = {}
    for name, keep in (("all", half >= 0), ("A", half == 0), ("B", half == 1)):
        rows = np.flatnonzero(keep)
        run = evaluate_run(
            [[ids[j] for j in top[i]] for i in rows], [relevant[i] for i in rows], ks=(10,)
        )
        out[f"recall@10 {name}"] = run["recall@10"]
        if name == "all":
            out["mrr@10"] = run["mrr@10"]
    return out


def _timed(encode, texts: list[str]) -> float:
    start = time.perf_counter()
    np.asarray(encode(texts), dtype=np.float32)
    return len(texts) / (time.perf_counter() - start)


def _speeds(encoders, docs: list[str], n_slow: int, rounds: int) -> dict[str, float]:
    """Best docs/s of each encoder over ``rounds`` interleaved rounds (the machine is shared, so
    interleaving exposes all encoders to the same background load). Transformers encode the
    first ``n_slow`` docs, the static model all of them.
    """
    best: dict[str, float] = {}
    for _ in range(rounds):
        for label, encode in encoders.items():
            texts = docs if label == STUDENT else docs[:n_slow]
            best[label] = max(best.get(label, 0.0), _timed(encode, texts))
    return best


def _word_vectors(st, words: list[str], cache: Path, batch_size: int) -> np.ndarray:
    """MiniLM vectors of the vocabulary, cached as ``words.npy`` beside ``words.txt``."""
    from embedops.train.distill import embed_words

    listing, vectors = cache / "words.txt", cache / "words.npy"
    if listing.exists() and vectors.exists() and listing.read_text().split("\n")[:-1] == words:
        return np.load(vectors)
    out = embed_words(st, words, batch_size)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(vectors, out)
    listing.write_text("\n".join(words) + "\n")
    return out


def _distill(args, registry, teacher, st):
    from embedops.text.tokenize import TokenizerSpec
    from embedops.train.distill import (
        DistillConfig,
        build_vocabulary,
        corpus_counts,
        distill,
        tokenizer_words,
    )

    corpus = args.data / "corpus-en-13m.txt.xz"
    config = DistillConfig(
        dim=args.dim or None,
        max_corpus_words=args.max_words,
        sif_coefficient=args.sif,
        fit_texts=args.fit_texts,
    )
    spec = TokenizerSpec()
    base = tokenizer_words(st.tokenizer.get_vocab(), spec)
    words, _ = build_vocabulary(base, corpus_counts(corpus, spec), config)
    vectors = _word_vectors(st, words, args.out / "distill", config.batch_size)
    start = time.perf_counter()
    mv = distill(registry, teacher.ref, "minilm-static", config, corpus, word_vectors=vectors)
    print(
        f"distill (word vectors cached): {time.perf_counter() - start:.0f} s, "
        f"vocab {mv.manifest['vocab_size']}, dim {mv.dim}, fitted on {args.fit_texts} texts"
    )
    return mv


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--dim", type=int, default=256, help="0 keeps MiniLM's 384")
    parser.add_argument("--max-words", type=int, default=100_000)
    parser.add_argument("--sif", type=float, default=3e-4, help="SIF coefficient a")
    parser.add_argument(
        "--fit-texts",
        type=int,
        default=0,
        help="corpus lines to fit on, sampled from the whole corpus, whose WordNet glosses are "
        "the queries' own texts: recall with a fit here is optimistic",
    )
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
    from _minilm_cache import minilm_vectors

    from embedops.config import Workspace
    from embedops.models.loader import load_encoder
    from embedops.models.registry import Registry
    from embedops.models.transformer import TransformerEncoder, import_transformer
    from embedops.train.finetune import load_sentence_transformer

    ids, docs, queries, relevant, synsets = _load(args.data)
    registry = Registry(Workspace(Path(tempfile.mkdtemp(prefix="bench-distill-"))))
    teacher = import_transformer(registry, "minilm", "minilm", onnx=True)
    st = load_sentence_transformer(teacher)
    student_mv = _distill(args, registry, teacher, st)
    student = load_encoder(student_mv, registry)
    encoders = {
        ANCHOR: lambda t: st.encode(
            t, batch_size=64, normalize_embeddings=True, show_progress_bar=False
        ),
        ONNX: TransformerEncoder.from_version(teacher, "onnx-int8").encode,
        STUDENT: student.encode,
    }
    vectors = {
        ANCHOR: minilm_vectors(args.data, args.out),
        STUDENT: (student.encode(docs), student.encode(queries)),
    }
    half, small = halves(synsets), subset_5k(ids, relevant)
    small_ids = [ids[i] for i in small]
    quality = {
        label: {
            "docs-20k": _scores(ids, d, q, relevant, half),
            "5k subset": _scores(small_ids, d[small], q, relevant, half),
        }
        for label, (d, q) in vectors.items()
    }
    speeds = _speeds(encoders, docs, args.speed_docs, args.rounds)
    print(f"load average {os.getloadavg()}")
    for label, speed in speeds.items():
        print(f"{label:40s} {speed:10.0f} docs/s")
    for where in ("docs-20k", "5k subset"):
        for label in (ANCHOR, STUDENT):
            q = quality[label][where]
            print(f"{where:10s} {label:40s} " + "  ".join(f"{k} {v:.3f}" for k, v in q.items()))
        kept = {
            k: quality[STUDENT][where][k] / quality[ANCHOR][where][k]
            for k in quality[STUDENT][where]
        }
        print(f"{where:10s} kept: " + "  ".join(f"{k} {v:.1%}" for k, v in kept.items()))
    print(
        f"speed ratio student/anchor: {speeds[STUDENT] / speeds[ANCHOR]:.0f}x "
        f"(vs embedops onnx-int8: {speeds[STUDENT] / speeds[ONNX]:.0f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
