"""Real English texts available offline, for calibrating and checking transformer exports.

Half are sentences of news text (gensim's bundled Lee corpus, varied length), half short
definitions (the WordNet glosses shipped with embedops), so that a calibration sees both the
long and the short inputs a collection holds. The draw is deterministic for a given ``seed``;
different seeds give disjoint-enough samples to calibrate on one and check on another.

``golden_retrieval`` is a small labelled search task from the same shipped glosses (a synset's
words as the query, its gloss the one relevant document among others), for the export's
quality gate to compare recall@10 before and after quantization.
"""

from __future__ import annotations

import json
import lzma
from functools import lru_cache
from pathlib import Path

import numpy as np


@lru_cache(maxsize=1)
def _lee_sentences() -> tuple[str, ...]:
    from gensim.test.utils import datapath

    lines = Path(datapath("lee_background.cor")).read_text(encoding="utf-8").splitlines()
    out = [s.strip() for line in lines for s in line.split(". ") if len(s.strip()) > 3]
    return tuple(out)


@lru_cache(maxsize=1)
def _synsets() -> tuple[tuple[str, str], ...]:
    """(words, gloss) of the first 20,000 shipped WordNet synsets."""
    path = Path(__file__).resolve().parent.parent / "data" / "wordnet-glosses.jsonl.xz"
    out: list[tuple[str, str]] = []
    with lzma.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                out.append((", ".join(row["lemmas"]), str(row["gloss"])))
            if len(out) >= 20_000:
                break
    return tuple(out)


def _glosses() -> tuple[str, ...]:
    return tuple(gloss for _, gloss in _synsets())


def calibration_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` texts, half news sentences and half glosses, drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    lee, glosses = _lee_sentences(), _glosses()
    half = n // 2
    picks = [lee[i] for i in rng.choice(len(lee), size=min(half, len(lee)), replace=False)]
    picks += [glosses[i] for i in rng.choice(len(glosses), size=n - len(picks), replace=False)]
    return picks


def golden_retrieval(
    n_docs: int = 1000, n_queries: int = 300, seed: int = 3
) -> tuple[list[str], list[str], list[int]]:
    """(queries, documents, the index of each query's one relevant document): ``n_docs``
    glosses drawn with ``seed``, and the words of ``n_queries`` of their synsets as queries."""
    rng = np.random.default_rng(seed)
    synsets = _synsets()
    picks = rng.choice(len(synsets), size=min(n_docs, len(synsets)), replace=False)
    docs = [synsets[i][1] for i in picks]
    relevant = sorted(int(j) for j in rng.choice(len(docs), size=min(n_queries, len(docs)),
                                                 replace=False))
    queries = [synsets[picks[j]][0] for j in relevant]
    return queries, docs, relevant
