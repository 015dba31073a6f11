"""Use cases vs their anchors, side by side in one run (dev splits only; tune on dev).

- classify: accuracy / macro-F1 on supersense-dev of embedops' classifier head
  (``usecases.classify.fit_head`` + ``Classifier.predict``) on MiniLM vectors, against TF-IDF
  (word 1-2 grams, sublinear tf, min_df 2) + logistic regression (C=10). MiniLM runs at ~10
  texts/s on the shared 2-core bench machine, so MiniLM uses seeded subsets (see
  ``_usecases_cache.py``: 4,000 train rows, 1,500 dev rows); the anchor is run on the same
  subsets *and* on the full splits (76,902 train / 9,463 dev).
- more-like-this: recall@10 / MRR@10 on related-dev with the query synset's gloss as the one
  positive example (``usecases.recommend.profile`` math: unit vector, cosine, the example left
  out), against TF-IDF cosine, both over the same 5,000-doc subset of supersense-docs holding
  150 seeded queries' relevant docs plus distractors.

- query expansion: revdict dev recall@10 of lexical and hybrid search with and without
  ``usecases.expand`` (nearest words of a word2vec model trained here on the first
  ``--corpus-mb`` MB of the 13M corpus), over the docs relevant to ``--queries`` dev queries
  plus seeded distractors from all docs (``--docs`` in all); the collection's own model is that
  static model, so hybrid here is BM25 + static vectors (no MiniLM cache needed).
- RAG context: a golden set built from the corpus' Linux kernel documentation (the first
  ``--rag-lines`` lines from its first title): each section heading is a question, its section
  the answer; headings are left out of the indexed text. Reported: precision@1/@3 of the packed
  passages (a passage counts when it overlaps the heading's section), hit@3, tokens used per
  answer, for hybrid with and without MMR diversity and for lexical.
- autocomplete: microseconds per answer in process, uncached (first time a partial query is
  asked) and cached, over the same collection with the dev queries recorded as past queries.

    .venv/bin/python bench/_usecases_cache.py    # once (minutes to hours, cached)
    .venv/bin/python bench/usecases.py [--data ../shared/data] [--c 10]
    .venv/bin/python bench/usecases.py --sections expand,autocomplete --queries 200 \
        --docs 5000 --corpus-mb 5                 # a small run (minutes)
"""

from __future__ import annotations

import argparse
import json
import lzma
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from _usecases_cache import SIZES, mlt_subset, read, subset  # noqa: E402


def _tfidf():  # type: ignore[no-untyped-def]
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)


def _scores(truth: list[str], pred: list[str]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": round(float(accuracy_score(truth, pred)), 4),
            "macro_f1": round(float(f1_score(truth, pred, average="macro", zero_division=0)), 4)}


def anchor_classify(train: list[dict], dev: list[dict]) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression

    vec = _tfidf()
    x = vec.fit_transform([r["text"] for r in train])
    model = LogisticRegression(C=10, max_iter=2000).fit(x, [r["label"] for r in train])
    t0 = time.perf_counter()
    pred = model.predict(vec.transform([r["text"] for r in dev]))
    out = _scores([r["label"] for r in dev], list(pred))
    out["predictions_per_s"] = round(len(dev) / (time.perf_counter() - t0))
    return out


def embedops_classify(out: Path, c: float) -> dict[str, float]:
    from embedops.usecases.classify import Classifier, fit_head

    ids = {p: json.loads((out / f"minilm-{p}.ids.json").read_text()) for p in ("train", "dev")}
    x = {p: np.load(out / f"minilm-{p}.npy") for p in ("train", "dev")}
    labels = {r["id"]: r["label"] for name in ("supersense-train", "supersense-dev")
              for r in read(DATA, name)}
    y = [labels[i] for i in ids["train"]]
    # A label seen once in the 4,000-row subset cannot be split stratified: leave it out.
    keep = [n for n, lab in enumerate(y) if y.count(lab) >= 2]
    fit = fit_head(x["train"][keep], [y[n] for n in keep], test_size=0.1, c=c)
    clf = Classifier({"labels": fit["labels"], "model_version": "minilm@bench",
                      "ref": "bench@1"}, fit["coef"], fit["intercept"], fit["temperature"])
    t0 = time.perf_counter()
    preds = clf.predict(x["dev"], "minilm@bench")
    rate = len(preds) / (time.perf_counter() - t0)
    res = _scores([labels[i] for i in ids["dev"]], [str(p.label) for p in preds])
    res["predictions_per_s (vectors given)"] = round(rate)
    return res


def _rank_metrics(ranked: list[list[str]], relevant: list[set[str]], k: int = 10
                  ) -> dict[str, float]:
    rec, mrr = [], []
    for got, rel in zip(ranked, relevant, strict=True):
        top = got[:k]
        rec.append(len(rel & set(top)) / len(rel))
        mrr.append(next((1 / (n + 1) for n, i in enumerate(top) if i in rel), 0.0))
    return {"recall@10": round(float(np.mean(rec)), 4), "mrr@10": round(float(np.mean(mrr)), 4)}


def more_like_this(out: Path) -> dict[str, dict[str, float]]:
    queries, docs = mlt_subset(DATA)
    ids = json.loads((out / "minilm-mlt-docs.ids.json").read_text())
    x = np.load(out / "minilm-mlt-docs.npy")
    assert ids == [d["id"] for d in docs], "stale cache: delete bench/out/usecases/minilm-mlt-*"
    row = {i: n for n, i in enumerate(ids)}
    relevant = [set(q["relevant"]) for q in queries]
    qrows = [row[q["id"]] for q in queries]
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    tf = _tfidf().fit_transform([d["text"] for d in docs])
    results = {}
    for name, sims in (("embedops more-like-this (MiniLM)", x[qrows] @ x.T),
                       ("TF-IDF cosine (anchor)", (tf[qrows] @ tf.T).toarray())):
        ranked = []
        for q, s in zip(qrows, sims, strict=True):
            s[q] = -np.inf  # the example itself is never returned
            ranked.append([ids[j] for j in np.argsort(-s, kind="stable")[:10]])
        results[name] = _rank_metrics(ranked, relevant)
    return results


def expansion_workspace(args: argparse.Namespace, out: Path) -> tuple[Any, list[str], list]:
    """(engine, dev queries, their relevant ids): a workspace with a word2vec model trained on
    the corpus slice and collection ``revdict`` of the relevant docs plus distractors."""
    from search_quality import read_docs, read_queries

    from embedops.engine import Embedops
    from embedops.train.word2vec import TrainConfig

    queries, qrels = read_queries(DATA / "revdict" / "queries-dev.jsonl", args.queries)
    ids, texts = read_docs(DATA / "revdict" / "docs.jsonl.xz")
    wanted = {r for rel in qrels for r in rel}
    keep = [n for n, i in enumerate(ids) if i in wanted]
    rest = [n for n in np.random.default_rng(0).permutation(len(ids)) if ids[n] not in wanted]
    keep = sorted(keep + rest[:max(0, args.docs - len(keep))])
    home = out / f"ws-expand-{args.corpus_mb}mb-{args.docs}"
    eo = Embedops(home=home)
    if "w2v" not in eo.models.names():
        corpus = out / f"corpus-{args.corpus_mb}mb.txt"
        with lzma.open(DATA / "corpus-en-13m.txt.xz", "rt", encoding="utf-8") as src, \
                corpus.open("w", encoding="utf-8") as dst:
            dst.write(src.read(args.corpus_mb * 1_000_000))
        eo.models.train(corpus, "w2v", TrainConfig(dim=100, workers=2))
    if "revdict" not in [c.name for c in eo.collections.list()]:
        eo.collections.create("revdict", model="w2v")
        eo.upsert_items("revdict", [{"id": ids[n], "text": texts[n]} for n in keep])
        eo.build_index("revdict", kind="flat", quiet=True)
    return eo, queries, qrels


def expansion(eo: Any, queries: list[str], qrels: list) -> dict[str, object]:
    """recall@10 / MRR@10 of lexical and hybrid, plain and expanded, and the terms added."""
    from embedops.evaluate.retrieval import evaluate_run
    from embedops.usecases import expand

    rows: dict[str, object] = {}
    opts = expand.ExpandOptions()
    added = []
    for mode in ("lexical", "hybrid"):
        plain = [[h.id for h in eo.search("revdict", q, 10, mode).hits] for q in queries]
        runs = []
        for q in queries:
            found = expand.search(eo, "revdict", q, 10, mode, expand_options=opts)
            runs.append([h.id for h in found.response.hits])
            added.append(len(found.expansion.terms))
        for name, got in ((mode, plain), (f"{mode} + expansion", runs)):
            res = evaluate_run(got, qrels, ks=(10,))
            rows[name] = {"recall@10": round(res["recall@10"], 4),
                          "mrr@10": round(res["mrr@10"], 4)}
    rows["terms added per query (mean)"] = round(float(np.mean(added)), 2)
    rows["options"] = {"per_term": opts.per_term, "max_terms": opts.max_terms,
                       "min_similarity": opts.min_similarity, "weight": opts.weight}
    return rows


_HEADING = re.compile(r"^(.{3,80}?) (?:={4,}|-{4,}|~{4,}|\^{4,}|\*{4,})(?: (.*))?$")
_TITLE = re.compile(r"^={4,} (.{3,80}?) ={4,}$")


def linux_doc_golden(lines: list[str]
                     ) -> tuple[list[dict[str, str]], list[tuple[str, str, int, int]]]:
    """(documents, questions): one document per titled file (its section bodies, headings left
    out), and ``(heading, document id, start, end)`` of every section with 200+ characters."""
    docs: list[dict[str, str]] = []
    questions: list[tuple[str, str, int, int]] = []
    heading: str | None = None
    start = 0

    def close() -> None:
        if heading is not None and docs and len(docs[-1]["text"]) - start >= 200:
            questions.append((heading, docs[-1]["id"], start, len(docs[-1]["text"])))

    for line in lines:
        title = _TITLE.match(line)
        head = None if title else _HEADING.match(line)
        if head and not re.search(r"[A-Za-z]{3}", head.group(1)):
            head = None  # a table rule (====== ====), not a heading
        if title or head:
            close()
            if title:
                docs.append({"id": f"doc{len(docs)}", "text": ""})
            heading = head.group(1).strip() if head else None
            start = len(docs[-1]["text"]) if docs else 0
            line = (head.group(2) or "") if head else ""
            if not line:
                continue
        if docs:
            docs[-1]["text"] += line + "\n\n"
    close()
    return [d for d in docs if d["text"].strip()], questions


def rag_golden(eo: Any, args: argparse.Namespace) -> dict[str, object]:
    """precision@1/@3, hit@3 and tokens per answer of ``rag.context`` on the Linux-doc set."""
    from embedops.usecases import rag

    with lzma.open(DATA / "corpus-en-13m.txt.xz", "rt", encoding="utf-8") as fh:
        lines = [x.rstrip("\n") for x in fh]
    first = next(n for n, x in enumerate(lines) if _TITLE.match(x))
    docs, questions = linux_doc_golden(lines[first:first + args.rag_lines])
    if "linuxdoc" not in [c.name for c in eo.collections.list()]:
        eo.collections.create("linuxdoc", model="w2v")
        rag.add_documents(eo, "linuxdoc", docs, chunk_tokens=200)
        eo.build_index("linuxdoc", kind="flat", quiet=True)
    rng = np.random.default_rng(0)
    picked = [questions[i] for i in sorted(rng.permutation(len(questions))[:args.rag_queries])]
    rows: dict[str, object] = {"documents": len(docs), "questions": len(picked),
                               "chunks": eo.count("linuxdoc"), "budget": args.rag_budget}
    for name, mode, diversity in (("hybrid, MMR 0.3", "hybrid", 0.3),
                                  ("hybrid, no MMR", "hybrid", 0.0),
                                  ("lexical, no MMR", "lexical", 0.0)):
        p1, p3, hit, used = [], [], [], []
        for heading, doc, start, end in picked:
            ctx = rag.context(eo, "linuxdoc", heading, args.rag_budget, diversity=diversity,
                              mode=mode)
            good = [p.parent_id == doc and p.start < end and p.end > start
                    for p in ctx.passages]
            p1.append(float(good[0]) if good else 0.0)
            p3.append(float(np.mean(good[:3])) if good else 0.0)
            hit.append(float(any(good[:3])))
            used.append(ctx.tokens_used)
        rows[name] = {"precision@1": round(float(np.mean(p1)), 4),
                      "precision@3": round(float(np.mean(p3)), 4),
                      "hit@3": round(float(np.mean(hit)), 4),
                      "tokens per answer": round(float(np.mean(used)), 1)}
    return rows


def autocomplete_speed(eo: Any, queries: list[str]) -> dict[str, object]:
    """Microseconds per answer: uncached and cached, through ``Completer.complete`` and
    through ``usecases.autocomplete.complete`` (which also checks the collection)."""
    from embedops.usecases import autocomplete

    autocomplete.record(eo, "revdict", queries)
    comp = autocomplete.completer(eo, "revdict")
    partials = list(dict.fromkeys(q[:n] for q in queries for n in (2, 4, 7) if len(q) > n))
    t0 = time.perf_counter()
    for p in partials:
        comp.complete(p, 5)
    cold = (time.perf_counter() - t0) / len(partials)
    rounds = 5
    t0 = time.perf_counter()
    for _ in range(rounds):
        for p in partials:
            comp.complete(p, 5)
    warm = (time.perf_counter() - t0) / (rounds * len(partials))
    t0 = time.perf_counter()
    for p in partials:
        autocomplete.complete(eo, "revdict", p, 5)
    facade = (time.perf_counter() - t0) / len(partials)
    return {"partials": len(partials), "vocabulary": comp.vocabulary_size,
            "uncached us/answer": round(cold * 1e6, 1),
            "cached us/answer (Completer.complete)": round(warm * 1e6, 2),
            "cached us/answer (autocomplete.complete)": round(facade * 1e6, 2)}


def main() -> None:
    global DATA
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    ap.add_argument("--c", type=float, default=10.0)
    ap.add_argument("--sections", default="classify,mlt,expand,autocomplete,rag",
                    help="comma-separated: classify, mlt, expand, autocomplete, rag")
    ap.add_argument("--queries", type=int, default=1000, help="revdict dev queries")
    ap.add_argument("--docs", type=int, default=20_000, help="revdict docs in the collection")
    ap.add_argument("--corpus-mb", type=int, default=40, help="word2vec corpus slice, MB")
    ap.add_argument("--rag-lines", type=int, default=20_000, help="Linux-doc lines (RAG)")
    ap.add_argument("--rag-queries", type=int, default=300, help="RAG golden questions")
    ap.add_argument("--rag-budget", type=int, default=600, help="RAG token budget")
    args = ap.parse_args()
    DATA = args.data
    sections = set(args.sections.split(","))
    out = HERE / "out" / "usecases"
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, object] = {"sizes": SIZES, "c": args.c}
    if "classify" in sections:
        train, dev = read(DATA, "supersense-train"), read(DATA, "supersense-dev")
        report["classify"] = {
            "embedops head on MiniLM (subset)": embedops_classify(out, args.c),
            "TF-IDF + LogReg anchor (same subset)": anchor_classify(
                subset(train, SIZES["train"]), subset(dev, SIZES["dev"])),
            "TF-IDF + LogReg anchor (full splits)": anchor_classify(train, dev),
        }
    if "mlt" in sections:
        report["more_like_this (5,000-doc subset, 150 queries)"] = more_like_this(out)
    if sections & {"expand", "autocomplete", "rag"}:
        eo, queries, qrels = expansion_workspace(args, out)
        size = f"{len(queries)} queries, {eo.count('revdict')} docs, {args.corpus_mb} MB corpus"
        if "expand" in sections:
            report[f"query expansion ({size})"] = expansion(eo, queries, qrels)
        if "autocomplete" in sections:
            report[f"autocomplete ({size})"] = autocomplete_speed(eo, queries)
        if "rag" in sections:
            report[f"RAG context (Linux docs, {args.rag_lines} lines)"] = rag_golden(eo, args)
        eo.close()
    print(json.dumps(report, indent=2))


DATA = Path()

if __name__ == "__main__":
    main()
