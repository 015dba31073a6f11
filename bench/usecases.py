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

    .venv/bin/python bench/_usecases_cache.py    # once (minutes to hours, cached)
    .venv/bin/python bench/usecases.py [--data ../shared/data] [--c 10]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

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


def main() -> None:
    global DATA
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    ap.add_argument("--c", type=float, default=10.0)
    args = ap.parse_args()
    DATA = args.data
    out = HERE / "out" / "usecases"
    train, dev = read(DATA, "supersense-train"), read(DATA, "supersense-dev")
    report: dict[str, object] = {"sizes": SIZES, "c": args.c}
    report["classify"] = {
        "embedops head on MiniLM (subset)": embedops_classify(out, args.c),
        "TF-IDF + LogReg anchor (same subset)": anchor_classify(
            subset(train, SIZES["train"]), subset(dev, SIZES["dev"])),
        "TF-IDF + LogReg anchor (full splits)": anchor_classify(train, dev),
    }
    report["more_like_this (5,000-doc subset, 150 queries)"] = more_like_this(out)
    print(json.dumps(report, indent=2))


DATA = Path()

if __name__ == "__main__":
    main()
