"""Query expansion with the nearest words of a static model: weighted, bounded and explainable.

    exp = expand(eo, "lacking physical depth", ExpandOptions(model="w2v"))
    exp.terms      # [ExpansionTerm(term="shallow", source="depth", similarity=0.71,
                   #                weight=0.36, phrase=False), ...]
    search(eo, "docs", "lacking physical depth", mode="hybrid", expand=ExpandOptions())

Each content word of the query (and each adjacent pair the model holds as a phrase, such as
``new_york``) brings at most ``per_term`` neighbours with cosine >= ``min_similarity``; at most
``max_terms`` are added overall, best first. A term's weight is ``weight * similarity``.
Neighbours that stem like a query word (BM25 matches them already) are left out; phrase
neighbours are added as their words (``new york``).

Expanded lexical search scores an item ``bm25(query) + sum(w_t * bm25(t))`` over the top
``max(100, k)`` items of the query and of each added term (an item outside a term's top list
gets nothing from that term). Expanded hybrid search fuses a dense search of the original query
with that lexical list by weighted RRF, as plain hybrid search does.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from embedops.errors import InvalidInput
from embedops.search.hybrid import FUSION_DEPTH, hybrid_fuse
from embedops.search.models import DEFAULT_HYBRID_WEIGHT, Hit, SearchResponse

if TYPE_CHECKING:
    from embedops.engine.facade import Embedops

_WORD = re.compile(r"[^\W\d_]+")
MODES = ("lexical", "hybrid")


@dataclass(frozen=True)
class ExpandOptions:
    """How far to expand: ``model`` (a static model; default the collection's model, else the
    workspace's only model), neighbours per query word, terms added in all, the lowest cosine
    a neighbour needs, and the weight of an added term relative to a query word (times its
    cosine). Round-trips through ``ExpandOptions(**asdict(o))``."""

    model: str | None = None
    per_term: int = 3
    max_terms: int = 10
    min_similarity: float = 0.6
    weight: float = 0.5

    def __post_init__(self) -> None:
        for name, value, top in (("per_term", self.per_term, 50),
                                 ("max_terms", self.max_terms, 100)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
                raise InvalidInput(f"{name} must be an integer in 0..{top}, got {value!r}")
        if not -1.0 <= self.min_similarity <= 1.0:
            raise InvalidInput(f"min_similarity must be in [-1, 1], got {self.min_similarity}")
        if not 0.0 < self.weight <= 1.0:
            raise InvalidInput(f"weight must be in (0, 1], got {self.weight}",
                               "an added term counts weight x cosine of a query word")


@dataclass(frozen=True)
class ExpansionTerm:
    """One added term: its text, the query word or phrase it is near, the cosine and weight."""

    term: str
    source: str
    similarity: float
    weight: float
    phrase: bool = False


@dataclass(frozen=True)
class Expansion:
    """A query and the terms added to it (best first), from ``model_version``."""

    query: str
    model_version: str
    terms: list[ExpansionTerm] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The query followed by every added term (for engines without term weights)."""
        return " ".join([self.query, *(t.term for t in self.terms)])

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {**asdict(self), "text": self.text}


@dataclass(frozen=True)
class ExpandedSearch:
    """The hits of an expanded search and the expansion that produced them."""

    response: SearchResponse
    expansion: Expansion

    def to_dict(self) -> dict[str, Any]:
        """JSON form: the search response with an ``expansion`` entry."""
        return {**self.response.to_dict(), "expansion": self.expansion.to_dict()}


def expand(eo: Embedops, query: str, options: ExpandOptions | None = None,
           collection: str | None = None) -> Expansion:
    """The terms to add to ``query``, with their weights and the words they come from."""
    opts = options or ExpandOptions()
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("the query is empty", "pass the text to expand")
    ref = _model(eo, opts.model, collection)
    table = eo.models.table(ref)
    words = [w.lower() for w in _WORD.findall(query)]
    sources = _sources(words, table)
    stem = _stemmer()
    seen = {stem(w) for w in words}
    found: dict[str, ExpansionTerm] = {}
    for source in sources:
        kept = 0
        for word, sim in table.most_similar(source, opts.per_term * 4 + 4):
            text = word.replace("_", " ").lower()
            stems = {stem(p) for p in _WORD.findall(text)}
            if kept >= opts.per_term or sim < opts.min_similarity:
                break
            if not stems or stems <= seen or text in found or _is_stopword(text):
                continue
            kept += 1
            found[text] = ExpansionTerm(text, source.replace("_", " "), round(float(sim), 4),
                                        round(opts.weight * float(sim), 4), "_" in word)
    terms = sorted(found.values(), key=lambda t: (-t.weight, t.term))[:opts.max_terms]
    return Expansion(query, ref, terms)


def search(eo: Embedops, collection: str, query: str, k: int = 10, mode: str = "hybrid",
           filters: Mapping[str, Any] | None = None, expand_options: ExpandOptions | None = None,
           hybrid_weight: float = DEFAULT_HYBRID_WEIGHT) -> ExpandedSearch:
    """Lexical or hybrid search of ``query`` expanded with ``expand_options`` (weighted terms;
    see the module's docstring); the answer names the added terms."""
    started = time.perf_counter()
    if mode not in MODES:
        raise InvalidInput(f"expanded search runs in {' or '.join(MODES)} mode, not {mode!r}",
                           "dense search needs no expansion: the query vector covers it")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 1000:
        raise InvalidInput(f"k must be an integer in 1..1000, got {k!r}")
    expansion = expand(eo, query, expand_options, collection)
    depth = max(FUSION_DEPTH, k)
    lexical = _weighted_lexical(eo, collection, expansion, depth, filters)
    version: str | None = None
    if mode == "lexical":
        pairs = lexical[:k]
    else:
        dense = eo.search(collection, query, depth, "dense", filters)
        fused = hybrid_fuse([h.id for h in dense.hits], [h.id for h, _ in lexical[:depth]],
                            hybrid_weight, k)
        known = {h.id: h for h in dense.hits} | {h.id: h for h, _ in lexical}
        pairs = [(known[i], s) for i, s in fused]
        version = dense.model_version
    hits = [Hit(h.id, float(s), h.text, dict(h.metadata), version) for h, s in pairs]
    took = round((time.perf_counter() - started) * 1000, 3)
    return ExpandedSearch(SearchResponse(hits, version, mode, took), expansion)


def _weighted_lexical(eo: Embedops, collection: str, expansion: Expansion, depth: int,
                      filters: Mapping[str, Any] | None) -> list[tuple[Hit, float]]:
    """``(hit, score)`` of ``bm25(query) + sum(w_t * bm25(t))``, best first (ties in the
    order the searches found them, so no expansion gives plain lexical search's order)."""
    scores: dict[str, float] = {}
    hits: dict[str, Hit] = {}
    weighted = [(expansion.query, 1.0), *((t.term, t.weight) for t in expansion.terms)]
    for text, weight in weighted:
        for h in eo.search(collection, text, depth, "lexical", filters).hits:
            hits.setdefault(h.id, h)
            scores[h.id] = scores.get(h.id, 0.0) + weight * h.score
    order = sorted(scores, key=lambda i: -scores[i])
    return [(hits[i], scores[i]) for i in order]


def _model(eo: Embedops, model: str | None, collection: str | None) -> str:
    if model:
        return eo.models.resolve(model).ref
    if collection is not None:
        return eo.collection_info(collection).model_version
    return eo.models.resolve(eo.default_model()).ref


def _sources(words: list[str], table: Any) -> list[str]:
    """The query's phrases the model holds (``a_b``), then its other content words in order."""
    phrases = [f"{a}_{b}" for a, b in zip(words, words[1:], strict=False)
               if f"{a}_{b}" in table]
    singles = [w for w in dict.fromkeys(words) if w in table and not _is_stopword(w)
               and len(w) > 2]
    return phrases + singles


def _is_stopword(text: str) -> bool:
    return all(w in _stopwords() for w in text.split())


@functools.cache
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def _stemmer() -> Any:
    # One per call: a PyStemmer object must not be shared between threads.
    import Stemmer

    return Stemmer.Stemmer("english").stemWord
