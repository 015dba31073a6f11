"""Lexical search: BM25 over the live items of a collection.

A ``LexicalIndex`` (bm25s) is immutable: it scores a fixed list of documents, built from
scratch. ``IncrementalLexical`` is what ``CollectionView`` serves: it keeps the term statistics
(document frequencies, document lengths and their sum) and the tokenised documents per slot, so
a write costs work proportional to the write, and its scores equal (to float tolerance) those of
a ``LexicalIndex`` built on the same live documents (tests/property/test_incremental_bm25.py).
"""

from __future__ import annotations

import itertools
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

    def __init__(self, slots: np.ndarray, tf: np.ndarray) -> None:
        self.slots = np.array(slots, dtype=np.int32)  # exactly sized copies; grown on extend
        self.tf = np.array(tf, dtype=np.float32)
        self.n = len(self.slots)

    def extend(self, slots: np.ndarray, tf: np.ndarray) -> None:
        end = self.n + len(slots)
        if end > len(self.slots):  # grow into new arrays: old views keep their data
            size = max(end, 2 * len(self.slots))
            grown, grown_tf = np.empty(size, dtype=np.int32), np.empty(size, dtype=np.float32)
            grown[: self.n], grown_tf[: self.n] = self.slots[: self.n], self.tf[: self.n]
            self.slots, self.tf = grown, grown_tf
        self.slots[self.n : end], self.tf[self.n : end] = slots, tf
        self.n = end

    def view(self) -> tuple[np.ndarray, np.ndarray]:
        return self.slots[: self.n], self.tf[: self.n]


class _Flat:
    """A growable int32 array (the distinct terms, or their counts, of every indexed document,
    one document after another); only read and written under the index's lock."""

    __slots__ = ("data", "n")

    def __init__(self) -> None:
        self.data = np.empty(0, dtype=np.int32)
        self.n = 0

    def extend(self, values: np.ndarray) -> int:
        """Append ``values``; returns where they start."""
        start, end = self.n, self.n + len(values)
        if end > len(self.data):
            grown = np.empty(max(end, 2 * len(self.data)), dtype=np.int32)
            grown[:start] = self.data[:start]
            self.data = grown
        self.data[start:end] = values
        self.n = end
        return start


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The positions ``starts[i] .. starts[i] + counts[i] - 1`` of every ``i``, concatenated."""
    total = int(counts.sum())
    before = np.cumsum(counts) - counts
    return np.repeat(starts - before, counts) + np.arange(total, dtype=np.int64)


def _grouped(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[int], list[int]]:
    """``(order, distinct keys, where each key's run starts and ends in keys[order])``."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    if not len(keys):
        return order, ordered, [], []
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    return order, ordered[starts], starts.tolist(), [*starts[1:].tolist(), len(keys)]


class IncrementalLexical:
    """BM25 over documents in numbered slots, kept up to date one write at a time.

    ``add(slots, texts)`` indexes documents in fresh slots; ``delete(slots)`` removes them from
    the statistics (their postings are masked, and dropped by an occasional compaction that costs
    the live postings, amortised over as many writes). Scores are computed at query time from the
    current statistics, so they equal those of a ``LexicalIndex`` built on the live documents.

    Storage is arrays, not an object per document: each slot's distinct terms and their counts
    sit in two flat int32 arrays (``_doc_at`` / ``_doc_n`` say where), each term's postings in
    one ``_Postings``; an add of many documents is counted with numpy in one pass, so building
    the index of 1M documents costs about the tokenising.
    """

    def __init__(self, config: LexicalConfig | None = None) -> None:
        self.config = config or LexicalConfig()
        self._stem = _stemmer(self.config.stemmer)
        self._lock = threading.Lock()
        self._vocab: dict[str, int] = {}
        self._postings: list[_Postings | None] = []  # None: no live document has the term
        self._df = np.zeros(1024, dtype=np.int64)  # per term id
        self._doc_at = np.zeros(1024, dtype=np.int64)  # per slot: start in _terms / _tfs
        self._doc_n = np.zeros(1024, dtype=np.int32)  # per slot: its distinct terms
        self._lengths = np.zeros(1024, dtype=np.float64)
        self._live = np.zeros(1024, dtype=bool)
        self._terms, self._tfs = _Flat(), _Flat()
        self._docs = 0
        self._total_len = 0
        self._dead_postings = 0
        self._live_postings = 0

    def __len__(self) -> int:
        return self._docs

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
        import bm25s

        if len(slots) != len(texts):
            raise InvalidInput(f"{len(slots)} slots for {len(texts)} texts")
        if not slots:
            return
        where = np.asarray(slots, dtype=np.int64)
        if where.min() < 0:
            raise InvalidInput("lexical slots are numbered from 0")
        tokens = bm25s.tokenize(list(texts), stopwords=self.config.stopwords or [],
                                stemmer=self._stem, return_ids=True, show_progress=False)
        with self._lock:
            self._reserve_slots(int(where.max()) + 1)
            self._check_free(where)
            self._add_tokenized(where, tokens.ids, tokens.vocab)

    @staticmethod
    def _grown(array: np.ndarray, n: int) -> np.ndarray:
        if n <= len(array):
            return array
        out = np.zeros(max(n, 2 * len(array)), dtype=array.dtype)
        out[: len(array)] = array
        return out

    def _reserve_slots(self, n: int) -> None:
        if n > len(self._live):  # new arrays: a reader's copy of the old ones stays valid
            self._doc_at = self._grown(self._doc_at, n)
            self._doc_n = self._grown(self._doc_n, n)
            self._lengths = self._grown(self._lengths, n)
            self._live = self._grown(self._live, n)

    def _check_free(self, where: np.ndarray) -> None:
        taken = self._live[where]
        if taken.any():
            raise InvalidInput(f"lexical slot {int(where[np.argmax(taken)])} is already in use")
        if len(np.unique(where)) < len(where):
            values, counts = np.unique(where, return_counts=True)
            raise InvalidInput(f"lexical slot {int(values[counts > 1][0])} is already in use")

    def _term_ids(self, local: dict[str, int]) -> np.ndarray:
        """Our term id of each of the tokeniser's ids (-1 for an empty token), numbering new
        terms as they come."""
        vocab, postings = self._vocab, self._postings
        out = np.empty(len(local), dtype=np.int64)
        for token, lid in local.items():
            if not token:
                out[lid] = -1
                continue
            term = vocab.get(token)
            if term is None:  # its postings are made whole by the add
                term = vocab[token] = len(postings)
                postings.append(None)
            out[lid] = term
        self._df = self._grown(self._df, len(postings))
        return out

    def _add_tokenized(self, where: np.ndarray, ids: list[list[int]], local: dict[str, int]
                       ) -> None:
        """Count each document's distinct terms and grow every touched posting list once."""
        mapping = self._term_ids(local)
        n_docs = len(where)
        counts = np.fromiter(map(len, ids), dtype=np.int64, count=n_docs)
        flat = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64,
                           count=int(counts.sum()))
        terms = mapping[flat]
        doc = np.repeat(np.arange(n_docs, dtype=np.int64), counts)
        keep = terms >= 0
        width = max(len(self._postings), 1)
        # one key per (document, term): sorted, they give each document's distinct terms
        pairs, tf = np.unique(doc[keep] * width + terms[keep], return_counts=True)
        pair_doc, pair_term = pairs // width, pairs % width
        per_doc = np.bincount(pair_doc, minlength=n_docs)
        start = self._terms.extend(pair_term.astype(np.int32))
        self._tfs.extend(tf.astype(np.int32))
        self._doc_at[where] = start + np.cumsum(per_doc) - per_doc
        self._doc_n[where] = per_doc
        self._lengths[where] = counts
        self._live[where] = True
        order, distinct, starts, ends = _grouped(pair_term)
        slots, tfs = where[pair_doc[order]], tf[order].astype(np.float32)
        postings = self._postings
        for term, a, b in zip(distinct.tolist(), starts, ends, strict=True):
            old = postings[term]
            if old is None:
                postings[term] = _Postings(slots[a:b], tfs[a:b])
            else:
                old.extend(slots[a:b], tfs[a:b])
        self._df[distinct] += np.diff([*starts, len(order)]) if starts else 0
        self._docs += n_docs
        self._total_len += int(counts.sum())
        self._live_postings += len(pairs)

    def delete(self, slots: Sequence[int]) -> int:
        """Remove the documents in ``slots`` (unknown slots are ignored); returns how many."""
        with self._lock:
            where = np.unique(np.asarray(list(slots), dtype=np.int64))
            where = where[(where >= 0) & (where < len(self._live))]
            where = where[self._live[where]]
            if not len(where):
                return 0
            n = self._doc_n[where].astype(np.int64)
            terms = self._terms.data[_ranges(self._doc_at[where], n)]
            np.subtract.at(self._df, terms, 1)
            self._live[where] = False
            self._total_len -= int(self._lengths[where].sum())
            self._docs -= len(where)
            self._live_postings -= int(n.sum())
            self._dead_postings += int(n.sum())
            if self._dead_postings > max(self._live_postings, 4096):
                self._compact()
        return len(where)

    def _compact(self) -> None:
        """Rebuild the postings and the per-document arrays from the live documents (slots keep
        their numbers)."""
        live = np.flatnonzero(self._live)
        n = self._doc_n[live].astype(np.int64)
        at = _ranges(self._doc_at[live], n)
        terms, tfs = self._terms.data[at], self._tfs.data[at]
        self._terms, self._tfs = _Flat(), _Flat()
        self._terms.extend(terms)
        self._tfs.extend(tfs)
        self._doc_at[live] = np.cumsum(n) - n
        order, distinct, starts, ends = _grouped(terms.astype(np.int64))
        slots, weights = np.repeat(live, n)[order], tfs[order]
        postings: list[_Postings | None] = [None] * len(self._postings)
        for term, a, b in zip(distinct.tolist(), starts, ends, strict=True):
            postings[term] = _Postings(slots[a:b], weights[a:b])
        self._postings, self._dead_postings = postings, 0

    def _scored(self, query: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The live slots below ``n`` that ``query`` scores (ascending) and their BM25 scores
        (float32): the slots in the query terms' postings, or every live slot for bm25l/bm25+
        (which give every document the score of tf = 0, as bm25s does). Only the candidates are
        gathered, so a query costs its terms' postings, not a pass over the collection."""
        counts = Counter(t for t in self.tokenize([query])[0] if t)
        empty = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        with self._lock:  # a consistent snapshot of the statistics; arrays are only appended
            docs = self._docs
            if not docs:
                return empty
            avg = self._total_len / docs
            live, lengths, top = self._live, self._lengths, len(self._live)
            terms = [(self._vocab.get(t), c) for t, c in counts.items()]
            found = [(p.view(), int(self._df[t]), c) for t, c in terms
                     if t is not None and self._df[t] > 0
                     and (p := self._postings[t]) is not None]  # fmt: skip
        cfg, n = self.config, min(n, top)
        out = np.zeros(n, dtype=np.float64)
        floors, touched = 0.0, []
        for (slots, tf), df, times in found:
            if n < top:
                keep = slots < n
                slots, tf = slots[keep], tf[keep]
            idf = _idf(cfg.method, df, docs)
            norm = 1 - cfg.b + cfg.b * lengths[slots] / avg
            term = idf * _tfc(cfg, tf.astype(np.float64), norm)
            if cfg.method in ("bm25l", "bm25+"):  # every document gets the score of tf = 0
                floor = idf * float(_tfc(cfg, np.zeros(1), np.ones(1))[0])
                floors += times * floor
                term = term - floor
            out[slots] += times * term
            touched.append(slots)
        if floors:
            cand = np.flatnonzero(live[:n])
            out[cand] += floors
        elif not touched:
            return empty
        elif sum(map(len, touched)) * 8 < n:  # few postings: sort them, not scan every slot
            cand = np.sort(np.concatenate(touched)).astype(np.int64)
            cand = cand[np.r_[True, cand[1:] != cand[:-1]]]  # (np.unique hashes: slower)
            cand = cand[live[cand]]
        else:
            cand = np.flatnonzero(out)
            cand = cand[live[cand]]
        return cand, out[cand].astype(np.float32)

    def scores(self, query: str, n: int) -> np.ndarray:
        """BM25 score (float32) of slots ``0..n-1`` for ``query``; 0 for dead or unused slots
        (bm25l/bm25+ give every live document a floor score, as bm25s does)."""
        cand, scored = self._scored(query, n)
        out = np.zeros(n, dtype=np.float32)
        out[cand] = scored
        return out

    def search(self, query: str, k: int, allowed: np.ndarray) -> list[tuple[int, float]]:
        """Top ``k`` (slot, score) pairs among slots where ``allowed`` is True, best first."""
        cand, scored = self._scored(query, len(allowed))
        keep = allowed[cand]
        cand, scored = cand[keep], scored[keep]
        return [(int(cand[i]), s) for i, s in top_positive(scored, k)]
