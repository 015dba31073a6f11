"""Lexical search: BM25 over the live items of a collection.

A ``LexicalIndex`` (bm25s) is immutable: it scores a fixed list of documents, built from
scratch. ``IncrementalLexical`` is what ``CollectionView`` serves: it keeps the term statistics
(document frequencies, document lengths and their sum) and the tokenised documents per slot, so
a write costs work proportional to the write, and its scores equal (to float tolerance) those of
a ``LexicalIndex`` built on the same live documents (tests/property/test_incremental_bm25.py).
"""

from __future__ import annotations

import math
import threading
from collections import Counter
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


# bm25s's parameter for bm25l and bm25+ (LexicalIndex uses the bm25s default too)
_DELTA = 0.5


def _idf(method: str, df: int, n: int) -> float:
    """Inverse document frequency of a term in ``df`` of ``n`` documents, as bm25s computes it."""
    if method == "robertson":
        return math.log(max((n - df + 0.5) / (df + 0.5), 1.0))
    if method == "atire":
        return math.log(n / df)
    if method == "bm25l":
        return math.log((n + 1) / (df + 0.5))
    if method == "bm25+":
        return math.log((n + 1) / df)
    return math.log(1 + (n - df + 0.5) / (df + 0.5))  # lucene


def _tfc(cfg: LexicalConfig, tf: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """bm25s's term-frequency component; ``norm`` is ``1 - b + b * len / avg_len``."""
    k1 = cfg.k1
    if cfg.method == "atire":
        return tf * (k1 + 1) / (tf + k1 * norm)  # type: ignore[no-any-return]
    if cfg.method == "bm25l":
        c = tf / norm
        return (k1 + 1) * (c + _DELTA) / (k1 + c + _DELTA)  # type: ignore[no-any-return]
    if cfg.method == "bm25+":
        return (k1 + 1) * tf / (k1 * norm + tf) + _DELTA  # type: ignore[no-any-return]
    return tf / (k1 * norm + tf)  # type: ignore[no-any-return]  # lucene, robertson


class _Postings:
    """Slots and term frequencies of one term, append-only (dead slots stay until compaction):
    entries below ``n`` never change, so a reader's views stay valid while writers append."""

    __slots__ = ("n", "slots", "tf")

    def __init__(self) -> None:
        self.slots = np.empty(4, dtype=np.int64)
        self.tf = np.empty(4, dtype=np.float32)
        self.n = 0

    def append(self, slot: int, tf: int) -> None:
        if self.n == len(self.slots):  # grow into new arrays: old views keep their data
            self.slots = np.concatenate([self.slots, np.empty_like(self.slots)])
            self.tf = np.concatenate([self.tf, np.empty_like(self.tf)])
        self.slots[self.n], self.tf[self.n] = slot, tf
        self.n += 1

    def extend(self, slots: np.ndarray, tf: np.ndarray) -> None:
        end = self.n + len(slots)
        if end > len(self.slots):  # grow into new arrays: old views keep their data
            size = max(end, 2 * len(self.slots))
            grown, grown_tf = np.empty(size, dtype=np.int64), np.empty(size, dtype=np.float32)
            grown[: self.n], grown_tf[: self.n] = self.slots[: self.n], self.tf[: self.n]
            self.slots, self.tf = grown, grown_tf
        self.slots[self.n : end], self.tf[self.n : end] = slots, tf
        self.n = end

    def view(self) -> tuple[np.ndarray, np.ndarray]:
        return self.slots[: self.n], self.tf[: self.n]


class IncrementalLexical:
    """BM25 over documents in numbered slots, kept up to date one write at a time.

    ``add(slots, texts)`` indexes documents in fresh slots; ``delete(slots)`` removes them from
    the statistics (their postings are masked, and dropped by an occasional compaction that costs
    the live postings, amortised over as many writes). Scores are computed at query time from the
    current statistics, so they equal those of a ``LexicalIndex`` built on the live documents.
    """

    def __init__(self, config: LexicalConfig | None = None) -> None:
        self.config = config or LexicalConfig()
        self._stem = _stemmer(self.config.stemmer)
        self._lock = threading.Lock()
        self._vocab: dict[str, int] = {}
        self._postings: list[_Postings] = []
        self._df: list[int] = []
        # slot -> its distinct term ids (row 0) and their counts (row 1), int32
        self._docs: dict[int, np.ndarray] = {}
        self._lengths = np.zeros(1024, dtype=np.float64)
        self._live = np.zeros(1024, dtype=bool)
        self._total_len = 0
        self._dead_postings = 0
        self._live_postings = 0

    def __len__(self) -> int:
        return len(self._docs)

    def tokenize(self, texts: list[str]) -> list[list[str]]:
        """Tokens of each text, with the config's stopwords and stemmer (as ``LexicalIndex``)."""
        import bm25s

        if not texts:
            return []
        out = bm25s.tokenize(texts, stopwords=self.config.stopwords or [], stemmer=self._stem,
                             return_ids=False, show_progress=False)  # fmt: skip
        return [list(t) for t in out]

    def add(self, slots: Sequence[int], texts: Sequence[str]) -> None:
        """Index ``texts`` in ``slots`` (each slot unused so far, or deleted before)."""
        if len(slots) != len(texts):
            raise InvalidInput(f"{len(slots)} slots for {len(texts)} texts")
        tokens = self.tokenize(list(texts))
        with self._lock:
            if slots:
                self._reserve(max(slots) + 1)
            self._add_many([int(slot) for slot in slots], tokens)

    def _reserve(self, n: int) -> None:
        if n > len(self._lengths):
            size = max(n, 2 * len(self._lengths))
            self._lengths = np.concatenate([self._lengths, np.zeros(size - len(self._lengths))])
            self._live = np.concatenate([self._live, np.zeros(size - len(self._live), bool)])

    def _add_many(self, slots: list[int], tokens: list[list[str]]) -> None:
        """Index tokenised documents in ``slots``: one pass over the documents counts their
        terms and gathers each term's new postings, which then grow each posting list once."""
        fresh: set[int] = set()
        for slot in slots:
            if slot in self._docs or slot in fresh:
                raise InvalidInput(f"lexical slot {slot} is already in use")
            fresh.add(slot)
        vocab, postings, df = self._vocab, self._postings, self._df
        gathered: dict[int, tuple[list[int], list[int]]] = {}
        lengths = np.zeros(len(slots), dtype=np.float64)
        pairs = 0
        for d, (slot, toks) in enumerate(zip(slots, tokens, strict=True)):
            lengths[d] = len(toks)
            terms, tfs = [], []
            for token, tf in Counter(t for t in toks if t).items():
                term = vocab.get(token)
                if term is None:
                    term = vocab[token] = len(postings)
                    postings.append(_Postings())
                    df.append(0)
                terms.append(term)
                tfs.append(tf)
                entry = gathered.get(term)
                if entry is None:
                    gathered[term] = ([slot], [tf])
                else:
                    entry[0].append(slot)
                    entry[1].append(tf)
            self._docs[slot] = np.array([terms, tfs], dtype=np.int32).reshape(2, len(terms))
            pairs += len(terms)
        for term, (term_slots, term_tfs) in gathered.items():
            if len(term_slots) == 1:  # most terms of a small write: no arrays to build
                postings[term].append(term_slots[0], term_tfs[0])
            else:
                postings[term].extend(np.asarray(term_slots, dtype=np.int64),
                                      np.asarray(term_tfs, dtype=np.float32))
            df[term] += len(term_slots)
        if slots:
            where = np.asarray(slots, dtype=np.int64)
            self._lengths[where] = lengths
            self._live[where] = True
        self._total_len += int(lengths.sum())
        self._live_postings += pairs

    def delete(self, slots: Sequence[int]) -> int:
        """Remove the documents in ``slots`` (unknown slots are ignored); returns how many."""
        removed = 0
        with self._lock:
            for slot in slots:
                doc = self._docs.pop(int(slot), None)
                if doc is None:
                    continue
                for term in doc[0]:
                    self._df[term] -= 1
                self._live[slot] = False
                self._total_len -= int(self._lengths[slot])
                self._live_postings -= len(doc[0])
                self._dead_postings += len(doc[0])
                removed += 1
            if self._dead_postings > max(self._live_postings, 4096):
                self._compact()
        return removed

    def _compact(self) -> None:
        """Rebuild the postings from the live documents (slots keep their numbers)."""
        postings = [_Postings() for _ in self._postings]
        for slot in sorted(self._docs):
            for term, tf in zip(*self._docs[slot], strict=True):
                postings[term].append(slot, tf)
        self._postings, self._dead_postings = postings, 0

    def scores(self, query: str, n: int) -> np.ndarray:
        """BM25 score (float32) of slots ``0..n-1`` for ``query``; 0 for dead or unused slots
        (bm25l/bm25+ give every live document a floor score, as bm25s does)."""
        counts = Counter(t for t in self.tokenize([query])[0] if t)
        out = np.zeros(n, dtype=np.float64)
        with self._lock:  # a consistent snapshot of the statistics; arrays are only appended
            docs = len(self._docs)
            if not docs:
                return out.astype(np.float32)
            avg = self._total_len / docs
            live = self._live[:n].copy()
            lengths = self._lengths
            terms = [(self._vocab.get(t), c) for t, c in counts.items()]
            found = [(self._postings[t].view(), self._df[t], c) for t, c in terms
                     if t is not None and self._df[t] > 0]  # fmt: skip
        cfg = self.config
        for (slots, tf), df, times in found:
            keep = slots < n
            slots, tf = slots[keep], tf[keep]
            idf = _idf(cfg.method, df, docs)
            norm = 1 - cfg.b + cfg.b * lengths[slots] / avg
            if cfg.method in ("bm25l", "bm25+"):  # every document gets the score of tf = 0
                floor = idf * float(_tfc(cfg, np.zeros(1), np.ones(1))[0])
                out += times * floor
                out[slots] += times * (idf * _tfc(cfg, tf.astype(np.float64), norm) - floor)
            else:
                out[slots] += times * idf * _tfc(cfg, tf.astype(np.float64), norm)
        out[: len(live)][~live] = 0.0
        return out.astype(np.float32)

    def search(self, query: str, k: int, allowed: np.ndarray) -> list[tuple[int, float]]:
        """Top ``k`` (slot, score) pairs among slots where ``allowed`` is True, best first."""
        scores = self.scores(query, len(allowed))
        return top_positive(np.where(allowed, scores, 0.0), k)
