"""Prefix autocomplete over a collection's vocabulary and its past queries.

    comp = completer(eo, "docs")          # built once per process, then kept
    comp.record(["red fox", "red fox den"])
    comp.complete("red fo", k=5)          # [Completion("red fox", "query", ...), ...]

A partial query is lower-cased and split into a context (its complete words) and a prefix (the
word being typed). Candidates are the past queries that start with the whole partial query and
the vocabulary words (content words of the collection's texts) that start with the prefix,
each written as the context followed by the word. The ``candidates`` most frequent of each
kind are scored ``(1 - similarity_weight) * log1p(count) / log1p(most frequent count)
+ similarity_weight * cosine``, where the cosine is between the candidate and the context
(vocabulary words) or the partial query (past queries) under the collection's model; a word
typed with no context is ranked by frequency alone. Answers are cached (LRU) until the next
``record``; word vectors are cached as they are first needed. The vocabulary is rebuilt when the
collection's item count has changed, at most once a minute (``REBUILD_AFTER_S``).

Past queries are kept under ``usecases/autocomplete/<collection>.json`` (encrypted with the
collection's key when it is encrypted, PII redacted when the collection redacts).
"""

from __future__ import annotations

import bisect
import json
import math
import re
import threading
import time
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embedops.errors import InvalidInput

if TYPE_CHECKING:
    from embedops.engine.facade import Embedops

_WORD = re.compile(r"[^\W\d_]{2,}")
_END = chr(0x10FFFF)
KIND = "autocomplete"
MAX_QUERY_CHARS = 200
MAX_QUERIES = 100_000
MAX_K = 50
CACHE_SIZE = 4096
VECTOR_CACHE = 100_000


@dataclass(frozen=True)
class Completion:
    """One suggestion: its text, where it comes from (``vocabulary`` or ``query``), its count
    there, its cosine to the context and its score."""

    text: str
    source: str
    count: int
    similarity: float
    score: float

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


class Completer:
    """Completions of partial queries for one collection (thread-safe)."""

    def __init__(self, terms: Counter[str], queries: Counter[str],
                 embed: Callable[[list[str]], np.ndarray],
                 save: Callable[[Counter[str]], None] | None = None,
                 similarity_weight: float = 0.3, candidates: int = 50) -> None:
        if not 0.0 <= similarity_weight <= 1.0:
            raise InvalidInput(f"similarity_weight must be in [0, 1], got {similarity_weight}")
        self._embed, self._save = embed, save
        self.similarity_weight, self.candidates = similarity_weight, candidates
        self._terms = sorted(terms)
        self._term_counts = np.array([terms[t] for t in self._terms], dtype=np.int64)
        self._max_term = math.log1p(int(self._term_counts.max(initial=0)))
        self._queries: Counter[str] = Counter()
        self._sorted_queries: list[str] = []
        self._vectors: dict[str, np.ndarray] = {}
        self._cache: OrderedDict[tuple[str, int], list[Completion]] = OrderedDict()
        self._lock = threading.Lock()
        self._add_queries(queries)

    @property
    def vocabulary_size(self) -> int:
        """How many distinct words can be completed."""
        return len(self._terms)

    def record(self, queries: Iterable[str]) -> int:
        """Count past queries (normalized; empty and over-long ones are skipped) and save
        them; returns how many were counted."""
        counted = Counter(q for q in (normalize(x) for x in queries)
                          if q and len(q) <= MAX_QUERY_CHARS)
        with self._lock:
            self._add_queries(counted)
            self._cache.clear()
            snapshot = Counter(self._queries)
        if self._save is not None and counted:
            self._save(snapshot)
        return sum(counted.values())

    def _add_queries(self, counted: Counter[str]) -> None:
        for query, n in counted.items():
            if query not in self._queries:
                if len(self._queries) >= MAX_QUERIES:
                    continue
                bisect.insort(self._sorted_queries, query)
            self._queries[query] += n

    def complete(self, partial: str, k: int = 5) -> list[Completion]:
        """The ``k`` best completions of ``partial``, best first (from the cache when asked
        before)."""
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise InvalidInput(f"k must be an integer in 1..{MAX_K}, got {k!r}")
        if not isinstance(partial, str) or not partial.strip():
            raise InvalidInput("the partial query is empty", "send what the user typed so far")
        if len(partial) > MAX_QUERY_CHARS:
            raise InvalidInput(f"the partial query has {len(partial)} characters; the limit "
                               f"is {MAX_QUERY_CHARS}")
        typed = normalize(partial) + (" " if partial[-1:].isspace() else "")
        key = (typed, k)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        found = self._rank(typed, k)
        with self._lock:
            self._cache[key] = found
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return found

    def _rank(self, typed: str, k: int) -> list[Completion]:
        context, _, prefix = typed.rpartition(" ")
        context = context.strip()
        rows: list[tuple[str, str, int]] = []
        if prefix:
            rows += [(f"{context} {t}".strip(), "vocabulary", n)
                     for t, n in self._top_terms(prefix)]
        with self._lock:
            lo = bisect.bisect_left(self._sorted_queries, typed)
            hi = bisect.bisect_left(self._sorted_queries, typed + _END)
            matches = [(q, self._queries[q]) for q in self._sorted_queries[lo:hi] if q != typed]
            top_query = math.log1p(max(self._queries.values(), default=0))
        matches.sort(key=lambda p: (-p[1], p[0]))
        rows += [(q, "query", n) for q, n in matches[:self.candidates]]
        if not rows:
            return []
        sims = self._similarities(context, typed, rows)
        scored: dict[str, Completion] = {}
        for (text, source, n), sim in zip(rows, sims, strict=True):
            top = self._max_term if source == "vocabulary" else top_query
            freq = math.log1p(n) / top if top > 0 else 0.0
            score = (1 - self.similarity_weight) * freq + self.similarity_weight * max(sim, 0.0)
            best = scored.get(text)
            if best is None or score > best.score:
                scored[text] = Completion(text, source, n, round(sim, 4), round(score, 4))
        return sorted(scored.values(), key=lambda c: (-c.score, c.text))[:k]

    def _top_terms(self, prefix: str) -> list[tuple[str, int]]:
        lo = bisect.bisect_left(self._terms, prefix)
        hi = bisect.bisect_left(self._terms, prefix + _END)
        counts = self._term_counts[lo:hi]
        if len(counts) > self.candidates:
            pick = np.argpartition(-counts, self.candidates - 1)[:self.candidates]
        else:
            pick = np.arange(len(counts))
        return [(self._terms[lo + int(i)], int(counts[i])) for i in pick]

    def _similarities(self, context: str, typed: str, rows: Sequence[tuple[str, str, int]]
                      ) -> list[float]:
        if not context and all(source == "vocabulary" for _, source, _ in rows):
            return [0.0] * len(rows)
        words = [text.rpartition(" ")[2] if source == "vocabulary" else text
                 for text, source, _ in rows]
        anchors = {"vocabulary": context, "query": typed.strip()}
        needed = [w for (_, source, _), w in zip(rows, words, strict=True) if anchors[source]]
        vecs = self._unit([*needed, *(a for a in anchors.values() if a)])
        out: list[float] = []
        for (_, source, _), word in zip(rows, words, strict=True):
            anchor = anchors[source]
            out.append(float(vecs[word] @ vecs[anchor]) if anchor else 0.0)
        return out

    def _unit(self, texts: list[str]) -> dict[str, np.ndarray]:
        with self._lock:
            have = {t: self._vectors[t] for t in texts if t in self._vectors}
        missing = [t for t in dict.fromkeys(texts) if t not in have]
        if missing:
            x = np.asarray(self._embed(missing), dtype=np.float32)
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
            fresh = dict(zip(missing, x, strict=True))
            have.update(fresh)
            with self._lock:
                if len(self._vectors) + len(fresh) > VECTOR_CACHE:
                    self._vectors.clear()  # bounded: typed partial queries are unbounded
                self._vectors.update(fresh)
        return have


def normalize(text: str) -> str:
    """Lower-case, single spaces, trimmed."""
    return " ".join(text.lower().split())


def vocabulary(texts: Iterable[str], min_count: int = 1) -> Counter[str]:
    """Content words (letters, 2 characters or more, no English stopword) and their counts."""
    from bm25s.stopwords import STOPWORDS_EN

    stop = frozenset(STOPWORDS_EN)
    counts = Counter(w for t in texts for w in _WORD.findall(t.lower()) if w not in stop)
    return Counter({w: n for w, n in counts.items() if n >= min_count})


# (engine id, workspace, collection, model) -> (engine, item count, built at, completer); the
# engine is held weakly (an id may be reused by a later engine: the weak reference tells them
# apart).
_COMPLETERS: dict[tuple[int, str, str, str], tuple[Any, int, float, Completer]] = {}
#: A changed item count rebuilds the vocabulary (a pass over every item) at most this often.
REBUILD_AFTER_S = 60.0
_REGISTRY_LOCK = threading.Lock()


def completer(eo: Embedops, collection: str, model: str | None = None, refresh: bool = False,
              similarity_weight: float = 0.3) -> Completer:
    """The Completer of ``collection`` in this process (built on first use, and again when the
    collection's item count changed, at most every ``REBUILD_AFTER_S`` seconds, or on
    ``refresh``); cosines under ``model`` (default the collection's active version)."""
    info = eo.collection_info(collection)
    ref = eo.models.resolve(model).ref if model else info.model_version
    key = (id(eo), str(eo.workspace.home), collection, ref)
    with _REGISTRY_LOCK:
        known = _COMPLETERS.get(key)
    if known is not None and known[0]() is eo and not refresh and (
            known[1] == info.item_count or time.monotonic() - known[2] < REBUILD_AFTER_S):
        return known[3]
    engine = weakref.ref(eo)

    def embed(texts: list[str]) -> np.ndarray:
        return _alive(engine).embed(texts, ref)

    def save(queries: Counter[str]) -> None:
        _save_queries(_alive(engine), collection, queries)

    terms = vocabulary(it.text for it in eo.iter_items(collection))
    built = Completer(terms, _load_queries(eo, collection), embed, save, similarity_weight)
    with _REGISTRY_LOCK:
        _COMPLETERS[key] = (engine, info.item_count, time.monotonic(), built)
    return built


def _alive(ref: weakref.ref[Embedops]) -> Embedops:
    eo = ref()
    if eo is None:
        raise InvalidInput("this completer's engine is closed", "get one from completer() again")
    return eo


def complete(eo: Embedops, collection: str, partial: str, k: int = 5) -> list[Completion]:
    """The ``k`` best completions of ``partial`` in ``collection`` (see ``Completer``)."""
    return completer(eo, collection).complete(partial, k)


def record(eo: Embedops, collection: str, queries: Sequence[str]) -> int:
    """Count ``queries`` as past queries of ``collection``; returns how many were counted."""
    if isinstance(queries, str) or not all(isinstance(q, str) for q in queries):
        raise InvalidInput("queries must be a list of strings")
    if eo.collection_info(collection).redact:
        from embedops.text.redact import redact

        queries = [redact(q).text for q in queries]
    return completer(eo, collection).record(queries)


def _path(eo: Embedops, collection: str) -> Path:
    return eo.workspace.usecases_dir / KIND / f"{collection}.json"


def _load_queries(eo: Embedops, collection: str) -> Counter[str]:
    path = _path(eo, collection)
    if not path.is_file():
        return Counter()
    data = path.read_bytes()
    if eo.collection_info(collection).encrypted:
        data = eo.unseal(collection, data, KIND)
    return Counter({str(q): int(n) for q, n in json.loads(data)["queries"].items()})


def _save_queries(eo: Embedops, collection: str, queries: Counter[str]) -> None:
    from embedops.fsio import atomic_write_bytes

    data = json.dumps({"queries": dict(queries)}, ensure_ascii=False).encode()
    sealed = eo.seal(collection, data, KIND)
    path = _path(eo, collection)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, sealed if sealed is not None else data)
