"""Classify and more-like-this on the full WordNet task splits, side by side with TF-IDF.

``bench/usecases.py`` measures every use case on seeded subsets (MiniLM through
sentence-transformers at ~10 texts/s on a loaded machine). This script measures the two with
targets on the full dev splits, with the vectors embedops itself serves: all 95,882
``supersense-docs`` encoded once by ``Embedops.embed`` with the bundled MiniLM on its default
backend (ONNX int8), cached under ``bench/out/usecases/``.

* classify: embedops' head (``usecases.classify.fit_head``: logistic regression with a
  calibrated temperature) trained on the 76,902 supersense-train rows, on the vectors alone and
  with TF-IDF of the texts beside them (``features="embedding+tfidf"``), scored on the 9,463
  dev rows; anchor: TF-IDF (word 1-2 grams) + the same logistic regression on the same splits.
* more-like-this: each of the 5,208 related-dev synsets against all 95,882 documents (exact
  cosine, the example itself left out), recall@10 / MRR@10 of its co-hyponyms; anchor: TF-IDF
  cosine on the same documents.

* cluster: k-means with k = 41 on the 9,463 dev rows (``usecases.cluster``'s k-means), NMI and
  ARI against the supersense labels; anchor: k-means on TF-IDF of the same texts.

    .venv/bin/python bench/usecases_full.py [--data ../shared/data] [--c 10] [--only cluster]
"""

from __future__ import annotations

import argparse
import json
import lzma
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))


def read(data: Path, name: str) -> list[dict[str, Any]]:
    """Rows of ``tasks/<name>.jsonl.xz``."""
    with lzma.open(data / "tasks" / f"{name}.jsonl.xz", "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def doc_vectors(data: Path, out: Path) -> tuple[list[str], list[str], np.ndarray]:
    """(ids, texts, vectors) of every supersense document, encoded once and cached."""
    docs = read(data, "supersense-docs")
    ids, texts = [str(d["id"]) for d in docs], [str(d["text"]) for d in docs]
    path, id_path = out / "minilm-int8-docs.npy", out / "minilm-int8-docs.ids.json"
    if path.exists() and id_path.exists() and json.loads(id_path.read_text()) == ids:
        return ids, texts, np.load(path)
    from embedops import Embedops

    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with Embedops(home=out / "ws") as eo:
        if not any(m.name == "minilm" for m in eo.models.list()):
            eo.models.import_transformer("minilm")
        chunks = [eo.embed(texts[i:i + 4096], "minilm") for i in range(0, len(texts), 4096)]
    vectors = np.vstack(chunks).astype(np.float32)
    print(f"encoded {len(texts):,} docs in {time.perf_counter() - started:.0f} s",
          file=sys.stderr)
    np.save(path, vectors)
    id_path.write_text(json.dumps(ids))
    return ids, texts, vectors


def _tfidf():  # type: ignore[no-untyped-def]
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)


def _scores(truth: list[str], pred: list[str]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": round(float(accuracy_score(truth, pred)), 4),
            "macro_f1": round(float(f1_score(truth, pred, average="macro", zero_division=0)), 4)}


def classify(data: Path, row: dict[str, int], x: np.ndarray, c: float) -> dict[str, Any]:
    """embedops' head on MiniLM vectors vs TF-IDF + logistic regression, full splits."""
    from sklearn.linear_model import LogisticRegression

    from embedops.usecases.classify import Classifier, fit_head

    train, dev = read(data, "supersense-train"), read(data, "supersense-dev")
    results: dict[str, Any] = {}
    for features in ("embedding", "embedding+tfidf"):
        texts = [r["text"] for r in train] if features != "embedding" else None
        started = time.perf_counter()
        fit = fit_head(x[[row[r["id"]] for r in train]], [r["label"] for r in train],
                       test_size=0.05, c=c, texts=texts)
        head = Classifier({"labels": fit["labels"], "model_version": "minilm@bench",
                           "ref": "bench@1"}, fit["coef"], fit["intercept"],
                          fit["temperature"], fit["text_features"])
        fit_s = time.perf_counter() - started
        started = time.perf_counter()
        preds = head.predict(x[[row[r["id"]] for r in dev]], "minilm@bench",
                             texts=[r["text"] for r in dev])
        rate = len(dev) / (time.perf_counter() - started)
        ours = _scores([r["label"] for r in dev], [str(p.label) for p in preds])
        ours.update({"fit_s": round(fit_s, 1),
                     "predictions_per_s (vectors given)": round(rate)})
        results[f"embedops head, features={features} (MiniLM int8)"] = ours
    started = time.perf_counter()
    vec = _tfidf()
    xt = vec.fit_transform([r["text"] for r in train])
    model = LogisticRegression(C=c, max_iter=2000).fit(xt, [r["label"] for r in train])
    fit_s = time.perf_counter() - started
    anchor = _scores([r["label"] for r in dev],
                     list(model.predict(vec.transform([r["text"] for r in dev]))))
    anchor["fit_s"] = round(fit_s, 1)
    results["TF-IDF + LogReg (anchor)"] = anchor
    for name, got in list(results.items())[:2]:
        results[f"macro_f1 gain, {name.split(',')[1].strip().split(' ')[0]}"] = round(
            got["macro_f1"] - anchor["macro_f1"], 4)
    return {**results, "train": len(train), "dev": len(dev)}


def _ranked(sims: Any, queries: list[int], ids: list[str], k: int = 10) -> list[list[str]]:
    out = []
    for q, s in zip(queries, sims, strict=True):
        s[q] = -np.inf  # the example itself is never returned
        top = np.argpartition(-s, k)[:k]
        out.append([ids[j] for j in top[np.argsort(-s[top], kind="stable")]])
    return out


def _rank_metrics(ranked: list[list[str]], relevant: list[set[str]], k: int = 10
                  ) -> dict[str, float]:
    """recall@k of the relevant items that fit in k (hits / min(relevant, k): the issue's
    anchors are in this one), recall@k of all relevant items, and MRR@k."""
    pairs = list(zip(ranked, relevant, strict=True))
    hits = [len(rel & set(got[:k])) for got, rel in pairs]
    fit = [h / min(len(rel), k) for h, (_, rel) in zip(hits, pairs, strict=True)]
    full = [h / len(rel) for h, (_, rel) in zip(hits, pairs, strict=True)]
    mrr = [next((1 / (n + 1) for n, i in enumerate(got[:k]) if i in rel), 0.0)
           for got, rel in pairs]
    return {f"recall@{k}": round(float(np.mean(fit)), 4),
            f"recall@{k} of all relevant": round(float(np.mean(full)), 4),
            f"mrr@{k}": round(float(np.mean(mrr)), 4)}


def more_like_this(data: Path, ids: list[str], texts: list[str], x: np.ndarray
                   ) -> dict[str, Any]:
    """Co-hyponyms of each related-dev synset among all documents: MiniLM vs TF-IDF."""
    queries = read(data, "related-dev")
    row = {i: n for n, i in enumerate(ids)}
    qrows = [row[q["id"]] for q in queries]
    relevant = [set(q["relevant"]) for q in queries]
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    tf = _tfidf().fit_transform(texts)
    results: dict[str, Any] = {}
    for name, sims_of in (("embedops more-like-this (MiniLM int8)", lambda r: x[r] @ x.T),
                          ("TF-IDF cosine (anchor)", lambda r: (tf[r] @ tf.T).toarray())):
        ranked: list[list[str]] = []
        for start in range(0, len(qrows), 512):
            part = qrows[start:start + 512]
            ranked += _ranked(sims_of(part), part, ids)
        results[name] = _rank_metrics(ranked, relevant)
    ours, anchor = (results[n]["recall@10"] for n in results)
    results["recall@10 ratio"] = round(ours / anchor, 3)
    results["queries"], results["docs"] = len(queries), len(ids)
    return results


def cluster(data: Path, row: dict[str, int], x: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """k-means with k = 41 (the supersense classes) on the dev rows: embedops' clustering of
    the MiniLM vectors vs k-means on TF-IDF, NMI and ARI against the labels."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from embedops.usecases.cluster import _kmeans

    dev = read(data, "supersense-dev")
    gold = [r["label"] for r in dev]
    k = len(set(gold))
    out: dict[str, Any] = {"items": len(dev), "k": k}
    started = time.perf_counter()
    ours, _, _ = _kmeans(x[[row[r["id"]] for r in dev]], k, seed)
    seconds = time.perf_counter() - started
    started_tf = time.perf_counter()
    tf = _tfidf().fit_transform([r["text"] for r in dev])
    anchor = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(tf).labels_
    seconds_tf = time.perf_counter() - started_tf
    for name, labels, took in (("embedops k-means (MiniLM int8)", ours, seconds),
                               ("TF-IDF k-means (anchor)", anchor, seconds_tf)):
        out[name] = {"nmi": round(float(normalized_mutual_info_score(gold, labels)), 4),
                     "ari": round(float(adjusted_rand_score(gold, labels)), 4),
                     "seconds": round(took, 1)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    ap.add_argument("--c", type=float, default=10.0)
    ap.add_argument("--only", choices=("classify", "more_like_this", "cluster"), default=None)
    args = ap.parse_args()
    ids, texts, x = doc_vectors(args.data, HERE / "out" / "usecases")
    row = {i: n for n, i in enumerate(ids)}
    sections = {
        "classify (supersense, full splits)": lambda: classify(args.data, row, x, args.c),
        "more_like_this (related-dev, all docs)": lambda: more_like_this(args.data, ids, texts,
                                                                         x),
        "cluster (supersense-dev, k = 41)": lambda: cluster(args.data, row, x),
    }
    report = {name: run() for name, run in sections.items()
              if args.only is None or name.startswith(args.only)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
