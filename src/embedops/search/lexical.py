"""Lexical search: BM25 (bm25s) over the live items of a collection.

A ``LexicalIndex`` is immutable: it scores a fixed list of documents. Keeping it in step with
upserts and deletes is the job of ``CollectionView`` (see ``view.py``): deletes are masked at
once, and any upsert makes the next lexical query rebuild the index from the catalog (bm25s
indexes ~20k short documents in about a second, so a rebuild per batch of writes is cheap).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from embedops.errors import InvalidInput

_METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")


@dataclass(frozen=True)
class LexicalConfig:
    """BM25 settings. ``stemmer`` is a PyStemmer language or None; ``stopwords`` a bm25s
    stopword language ("en") or None. Round-trips through ``LexicalConfig(**asdict(cfg))``.

    Defaults were chosen on the reverse-dictionary dev queries (docs/benchmarks/search.md):
    Snowball stemming and a milder length normalization (b=0.5) than Lucene's 0.75 each gain
    3-4 points of recall@10, on 20k and on 109k documents alike.
    """

    k1: float = 1.2
    b: float = 0.5
    method: str = "lucene"
    stopwords: str | None = "en"
    stemmer: str | None = "english"

    def __post_init__(self) -> None:
        if self.method not in _METHODS:
            raise InvalidInput(f"unknown BM25 method '{self.method}'", f"use one of {_METHODS}")
        if self.k1 < 0 or not 0 <= self.b <= 1:
            raise InvalidInput(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={self.k1} b={self.b}")


def _stemmer(language: str | None) -> Any:
    if language is None:
        return None
    import Stemmer

    try:
        return Stemmer.Stemmer(language)
    except KeyError as exc:
        raise InvalidInput(f"PyStemmer has no stemmer for '{language}'") from exc


class LexicalIndex:
    """BM25 scores over ``texts``; results are positions into ``ids``."""

    def __init__(
        self, ids: Sequence[str], texts: Sequence[str], config: LexicalConfig | None = None
    ) -> None:
        import bm25s

        if len(ids) != len(texts):
            raise InvalidInput(f"{len(ids)} ids for {len(texts)} texts")
        self.config = config or LexicalConfig()
        self.ids = list(ids)
        self._stem = _stemmer(self.config.stemmer)
        self._bm25: Any = None
        if self.ids:
            tokens = self._tokenize(list(texts), return_ids=True)
            self._bm25 = bm25s.BM25(k1=self.config.k1, b=self.config.b, method=self.config.method)
            self._bm25.index(tokens, show_progress=False)

    def __len__(self) -> int:
        return len(self.ids)

    def _tokenize(self, texts: list[str], return_ids: bool) -> Any:
        import bm25s

        return bm25s.tokenize(
            texts,
            stopwords=self.config.stopwords or [],
            stemmer=self._stem,
            return_ids=return_ids,
            show_progress=False,
        )

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for ``query`` (zeros when no query term is indexed)."""
        if self._bm25 is None:
            return np.zeros(0, dtype=np.float32)
        tokens = self._tokenize([query], return_ids=False)[0]
        token_ids = self._bm25.get_tokens_ids([t for t in tokens if t])
        if not token_ids:
            return np.zeros(len(self.ids), dtype=np.float32)
        return np.asarray(self._bm25.get_scores_from_ids(token_ids), dtype=np.float32)

    def search(
        self, query: str, k: int, allowed: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """Top ``k`` (position, score) pairs, best first; only documents sharing a term with
        the query, and only positions where the boolean mask ``allowed`` is True.
        """
        scores = self.scores(query)
        if allowed is not None and scores.size:
            scores = np.where(allowed, scores, 0.0)
        return top_positive(scores, k)


def top_positive(scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The ``k`` highest strictly positive scores as (position, score), best first."""
    candidates = np.flatnonzero(scores > 0)
    if candidates.size > k:
        part = np.argpartition(-scores[candidates], k - 1)[:k]
        candidates = candidates[part]
    order = candidates[np.lexsort((candidates, -scores[candidates]))]
    return [(int(i), float(scores[i])) for i in order]
