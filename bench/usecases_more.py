"""Near-duplicates and space mapping, each beside an anchor, on the shared 13M-word corpus.

* near-duplicates: 2,000 paragraphs of 40-150 words; 200 of them copied exactly, 200 reworded
  (every 5th word swapped for a WordNet synonym from the glosses that ship with embedops), 200
  truncated (the first 70% of the words); all 2,600 stored in a collection on the bundled MiniLM
  and ``usecases.dedup.find_duplicates`` run at its defaults. Precision and recall of the
  planted pairs (any other pair found counts against precision), per kind; anchor: TF-IDF
  cosine >= 0.8 over all pairs.
* mapping: two word2vec models trained on disjoint halves of the corpus (``Embedops.models
  .train``); ``usecases.mapping.fit`` learns the orthogonal map from the 5,000 most frequent
  shared words (identity pairs, 20% held out) and reports precision@1/@10 of translating the
  held-out words; anchor: the same held-out words compared without a map.

    .venv/bin/python bench/usecases_more.py [--data ../shared/data] [--only dedup|mapping]
"""

from __future__ import annotations

import argparse
import json
import lzma
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))


def paragraphs(data: Path, n: int, seed: int = 0) -> list[str]:
    """``n`` seeded corpus paragraphs of 40-150 words."""
    with lzma.open(data / "corpus-en-13m.txt.xz", "rt", encoding="utf-8") as fh:
        pool = [line.strip() for line in fh if 40 <= len(line.split()) <= 150]
    rng = np.random.default_rng(seed)
    return [pool[i] for i in rng.choice(len(pool), n, replace=False)]


def synonyms() -> dict[str, list[str]]:
    """Single-word WordNet synonyms (from the glosses embedops ships)."""
    from embedops.data import wordnet_glosses_path

    out: dict[str, list[str]] = {}
    with lzma.open(wordnet_glosses_path(), "rt", encoding="utf-8") as fh:
        for line in fh:
            words = [w for w in json.loads(line)["lemmas"] if w.isalpha() and w.islower()]
            for w in words:
                out.setdefault(w, []).extend(v for v in words if v != w)
    return out


def dedup(data: Path) -> dict[str, Any]:
    """Planted duplicates found by embedops vs a TF-IDF cosine threshold."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from embedops import Embedops
    from embedops.usecases.dedup import find_duplicates

    rng = np.random.default_rng(1)
    base = paragraphs(data, 2000)
    syn = synonyms()
    items = [{"id": f"p{i}", "text": t} for i, t in enumerate(base)]
    planted: dict[tuple[str, str], str] = {}
    picks = rng.choice(len(base), 600, replace=False)
    for n, i in enumerate(picks):
        words = base[i].split()
        if n < 200:
            kind, text = "exact", base[i]
        elif n < 400:
            kind = "reworded"
            text = " ".join(syn[w][0] if k % 5 == 0 and syn.get(w) else w
                            for k, w in enumerate(words))
        else:
            kind, text = "truncated", " ".join(words[: int(len(words) * 0.7)])
        items.append({"id": f"d{n}", "text": text})
        planted[(f"d{n}", f"p{i}") if f"d{n}" < f"p{i}" else (f"p{i}", f"d{n}")] = kind
    out: dict[str, Any] = {"items": len(items), "planted": len(planted)}
    with tempfile.TemporaryDirectory() as tmp, Embedops(home=Path(tmp) / "ws") as eo:
        eo.models.import_transformer("minilm")
        eo.collections.create("dups", "minilm")
        eo.upsert_items("dups", items)
        eo.build_index("dups", kind="hnsw", quiet=True)
        started = time.perf_counter()
        report = find_duplicates(eo, "dups")
        took = time.perf_counter() - started
    found = {(min(p.a, p.b), max(p.a, p.b)) for p in report.pairs}
    out["embedops find_duplicates (MiniLM, defaults)"] = _pr(found, planted, took)
    tf = TfidfVectorizer(sublinear_tf=True).fit_transform([it["text"] for it in items])
    sims = (tf @ tf.T).toarray()
    ids = [it["id"] for it in items]
    rows, cols = np.nonzero(np.triu(sims >= 0.8, k=1))
    anchor = {(min(ids[a], ids[b]), max(ids[a], ids[b])) for a, b in zip(rows, cols, strict=True)}
    out["TF-IDF cosine >= 0.8 (anchor)"] = _pr(anchor, planted, None)
    return out


def _pr(found: set[tuple[str, str]], planted: dict[tuple[str, str], str],
        seconds: float | None) -> dict[str, Any]:
    hits = found & set(planted)
    res: dict[str, Any] = {"precision": round(len(hits) / max(len(found), 1), 4),
                           "recall": round(len(hits) / len(planted), 4)}
    for kind in ("exact", "reworded", "truncated"):
        pairs = {p for p, k in planted.items() if k == kind}
        res[f"recall {kind}"] = round(len(pairs & found) / len(pairs), 4)
    if seconds is not None:
        res["seconds"] = round(seconds, 1)
    return res


def mapping(data: Path) -> dict[str, Any]:
    """Procrustes map between word2vec models of the corpus' two halves."""
    from embedops import Embedops
    from embedops.engine.options import TrainConfig
    from embedops.usecases.mapping import fit, precision

    with lzma.open(data / "corpus-en-13m.txt.xz", "rt", encoding="utf-8") as fh:
        lines = [line for line in fh if line.strip()]
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, Embedops(home=Path(tmp) / "ws") as eo:
        refs = []
        for half, part in (("a", lines[0::2]), ("b", lines[1::2])):
            corpus = Path(tmp) / f"{half}.txt"
            corpus.write_text("".join(part), encoding="utf-8")
            config = TrainConfig(model="word2vec", epochs=3, dim=100, min_count=5)
            refs.append(eo.models.train(corpus, f"half-{half}", config).version.ref)
        a, b = (eo.models.table(r) for r in refs)
        shared = [w for w in a.index_to_key if w in b.key_to_index and w.isalpha()][:5000]
        manifest = fit(eo, refs[0], refs[1], [(w, w) for w in shared], "halves", 0.2, seed=0)
        out["shared words"] = len(shared)
        out["embedops Procrustes map (held-out words)"] = manifest["metrics"]
        test = np.random.default_rng(0).permutation(len(shared))[:manifest["test_pairs"]]
        va = np.stack([a.vector(shared[i]) for i in test])
        vb = np.stack([b.vector(w) for w in shared])
        out["no map (anchor)"] = precision(va / np.linalg.norm(va, axis=1, keepdims=True), vb,
                                           test)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    ap.add_argument("--only", choices=("dedup", "mapping"), default=None)
    args = ap.parse_args()
    report = {}
    if args.only in (None, "dedup"):
        report["near-duplicates"] = dedup(args.data)
    if args.only in (None, "mapping"):
        report["mapping"] = mapping(args.data)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
