"""Static vectors benchmark: embedops against plain gensim, side by side in one run.

A word2vec CBOW model (dim 100, gensim defaults otherwise, min_count 5) is trained once on
corpus-en-13m with the embedops tokenizer and cached under ``bench/out``. Then, for the same
table, embedops and gensim ``KeyedVectors``:

* io: export and import in word2vec text and binary (``save_word2vec_format`` /
  ``load_word2vec_format``), checking both read back the same numbers;
* query: ``most_similar`` (k=10) for 500 frequent words, and the OOV suggestions embedops adds;
* intrinsic: WS353, SimLex-999 and Google analogies (``evaluate_word_pairs`` /
  ``evaluate_word_analogies``), same scores expected;
* pooling: reverse dictionary on revdict dev queries against docs-20k (exact cosine search),
  mean vs SIF pooling; the anchor is gensim's ``get_mean_vector`` (a plain mean).

    .venv/bin/python bench/vectors.py [--data ../shared/data] [--parts io,query,intrinsic,pooling]
"""

from __future__ import annotations

import argparse
import json
import lzma
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / "bench" / "out" / "w2v-cbow-100.bin"


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """``fn(*args, **kwargs)`` and the seconds it took."""
    started = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - started


def model(data: Path) -> Any:
    """The cached CBOW table (trained on first use, ~1 minute on 2 cores)."""
    from embedops.models.formats import export_vectors, import_vectors
    from embedops.models.static import StaticVectors

    if CACHE.exists():
        return import_vectors(CACHE, "word2vec-binary", quiet=True)
    from gensim.models import Word2Vec

    from embedops.text.tokenize import TokenizerSpec

    spec = TokenizerSpec()
    with lzma.open(data / "corpus-en-13m.txt.xz", "rt", encoding="utf-8") as fh:
        sentences = [toks for line in fh if (toks := spec.tokenize(line))]
    w2v = Word2Vec(sentences, vector_size=100, min_count=5, workers=2, seed=1, epochs=5)
    table = StaticVectors.from_gensim(w2v.wv)
    export_vectors(table, CACHE, "word2vec-binary", quiet=True)
    return table


def keyed(table: Any) -> Any:
    from gensim.models import KeyedVectors

    kv = KeyedVectors(table.dim)
    kv.add_vectors(table.index_to_key, np.array(table.vectors))
    return kv


def bench_io(table: Any, kv: Any) -> list[dict[str, Any]]:
    from gensim.models import KeyedVectors

    from embedops.models.formats import export_vectors, import_vectors

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, binary in (("word2vec-text", False), ("word2vec-binary", True)):
            ours, theirs = Path(tmp) / f"ours.{fmt}", Path(tmp) / f"theirs.{fmt}"
            _, e_ours = timed(export_vectors, table, ours, fmt, quiet=True)
            _, e_theirs = timed(kv.save_word2vec_format, str(theirs), binary=binary)
            back, i_ours = timed(import_vectors, theirs, fmt, quiet=True)
            g, i_theirs = timed(KeyedVectors.load_word2vec_format, str(ours), binary=binary)
            assert np.array_equal(back.vectors, g.vectors), "the two sides read different numbers"
            rows.append(
                {
                    "format": fmt,
                    "MB": round(ours.stat().st_size / 1e6, 1),
                    "export_s": round(e_ours, 2),
                    "gensim_export_s": round(e_theirs, 2),
                    "export_speedup": round(e_theirs / e_ours, 2),
                    "import_s": round(i_ours, 2),
                    "gensim_import_s": round(i_theirs, 2),
                    "import_speedup": round(i_theirs / i_ours, 2),
                }
            )
    return rows


def bench_query(table: Any, kv: Any) -> dict[str, Any]:
    words = random.Random(0).sample(table.index_to_key[:20_000], 500)
    table.unit_vectors  # noqa: B018 - build the cache outside the timing, as gensim's is
    kv.fill_norms()
    ours, t_ours = timed(lambda: [table.most_similar(w, k=10) for w in words])
    theirs, t_theirs = timed(lambda: [kv.most_similar(w, topn=10) for w in words])
    same = np.mean(
        [[a for a, _ in x] == [b for b, _ in y] for x, y in zip(ours, theirs, strict=True)]
    )
    pairs = [(_typo(w, i), w) for i, w in enumerate(words[:200])]
    pairs = [(t, w) for t, w in pairs if t not in table]
    hits, t_sugg = timed(lambda: [w in table.suggest(t) for t, w in pairs])
    return {
        "most_similar_ms": round(1000 * t_ours / len(words), 2),
        "gensim_most_similar_ms": round(1000 * t_theirs / len(words), 2),
        "speedup": round(t_theirs / t_ours, 2),
        "same_top10": float(same),
        "suggest_ms": round(1000 * t_sugg / len(pairs), 2),
        "suggest_finds_the_word": round(float(np.mean(hits)), 3),
        "vocab": len(table),
    }


def _typo(word: str, seed: int) -> str:
    rng = random.Random(seed)
    i = rng.randrange(len(word))
    return word[:i] + rng.choice("aeiourstn") + word[i + 1 :]


def bench_intrinsic(table: Any, kv: Any) -> list[dict[str, Any]]:
    from embedops.evaluate.intrinsic import evaluate_suite, suite_path

    rows = []
    for suite in ("wordsim353", "simlex999", "google-analogy"):
        ours, t_ours = timed(evaluate_suite, table, suite, quiet=True)
        if suite == "google-analogy":
            theirs, t_theirs = timed(kv.evaluate_word_analogies, suite_path(suite))
            mine, gens = ours.accuracy, theirs[0]
        else:
            theirs, t_theirs = timed(kv.evaluate_word_pairs, suite_path(suite))
            mine, gens = ours.spearman, theirs[1][0]
        rows.append(
            {
                "suite": suite,
                "score": round(mine, 4),
                "gensim_score": round(float(gens), 4),
                "s": round(t_ours, 2),
                "gensim_s": round(t_theirs, 2),
                "speedup": round(t_theirs / t_ours, 2),
            }
        )
    return rows


def bench_pooling(table: Any, kv: Any, data: Path) -> list[dict[str, Any]]:
    from embedops.evaluate.retrieval import evaluate_run
    from embedops.models.pooling import WORD_POOLING, PoolingConfig, StaticEncoder

    with lzma.open(data / "revdict" / "docs-20k.jsonl.xz", "rt", encoding="utf-8") as fh:
        docs = [json.loads(line) for line in fh]
    queries = [json.loads(line) for line in open(data / "revdict" / "queries-dev.jsonl")]
    ids, texts = [d["id"] for d in docs], [d["text"] for d in docs]
    qtexts, qrels = [q["query"] for q in queries], [q["relevant"] for q in queries]

    def score(doc_vecs: np.ndarray, q_vecs: np.ndarray) -> dict[str, float]:
        top = np.argsort(-(q_vecs @ doc_vecs.T), axis=1)[:, :10]
        run = [[ids[i] for i in row] for row in top]
        s = evaluate_run(run, qrels, ks=(10,)).scores
        return {"recall@10": round(s["recall@10"], 3), "mrr@10": round(s["mrr@10"], 3)}

    def anchor(batch: list[str]) -> np.ndarray:
        from embedops.text.tokenize import TokenizerSpec

        spec = TokenizerSpec()
        out = np.zeros((len(batch), kv.vector_size), dtype=np.float32)
        for i, text in enumerate(batch):
            toks = [t for t in spec.tokenize(text) if t in kv.key_to_index]
            if toks:
                out[i] = kv.get_mean_vector(toks, post_normalize=True)
        return out

    rows = []
    (d_vec, q_vec), t = timed(lambda: (anchor(texts), anchor(qtexts)))
    rows.append(
        {
            "pooling": "gensim get_mean_vector (anchor)",
            "encode_s": round(t, 1),
            **score(d_vec, q_vec),
        }
    )
    variants: list[tuple[str, PoolingConfig, bool]] = [
        ("mean of raw vectors", PoolingConfig(), False),
        ("mean of unit vectors", PoolingConfig(unit_tokens=True), False),
        ("WORD_POOLING (sif a=3e-4, unit), no component", WORD_POOLING, False),
        ("WORD_POOLING + component fitted on the docs", WORD_POOLING, True),
        ("sif a=1e-3 unit + component", PoolingConfig("sif", 1e-3, unit_tokens=True), True),
        ("sif a=1e-4 unit + component", PoolingConfig("sif", 1e-4, unit_tokens=True), True),
        ("sif a=1e-3 raw + component", PoolingConfig("sif", 1e-3), True),
    ]
    for label, config, fit in variants:
        enc = StaticEncoder(table, pooling=config)
        if fit:
            enc = enc.fit_sif(texts, sample=10_000)
        (d_vec, q_vec), t = timed(_encode_both, enc, texts, qtexts)
        oov = enc.encode_with_info(qtexts).oov_rate
        rows.append(
            {
                "pooling": label,
                "encode_s": round(t, 1),
                "query_oov": round(oov, 3),
                **score(d_vec, q_vec),
            }
        )
    return rows


def _encode_both(enc: Any, docs: list[str], queries: list[str]) -> tuple[np.ndarray, np.ndarray]:
    return enc.encode(docs, batch_size=512), enc.encode(queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--parts", default="io,query,intrinsic,pooling")
    args = parser.parse_args()
    parts = args.parts.split(",")
    table, t_model = timed(model, args.data)
    kv = keyed(table)
    print(
        json.dumps(
            {"model": f"cbow-100 ({len(table)} words)", "load_or_train_s": round(t_model, 1)}
        )
    )
    if "io" in parts:
        print(json.dumps({"io": bench_io(table, kv)}, indent=1))
    if "query" in parts:
        print(json.dumps({"query": bench_query(table, kv)}, indent=1))
    if "intrinsic" in parts:
        print(json.dumps({"intrinsic": bench_intrinsic(table, kv)}, indent=1))
    if "pooling" in parts:
        print(json.dumps({"pooling": bench_pooling(table, kv, args.data)}, indent=1))


if __name__ == "__main__":
    main()
