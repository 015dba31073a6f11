"""RAG context: chunk long documents, retrieve, deduplicate, diversify and pack passages into a
token budget, each with a citation (parent id, character offsets, score).

    add_documents(eo, "docs", [{"id": "guide", "text": long_text}], chunk_tokens=200)
    ingest_files(eo, "docs", ["manual.txt"])            # parent id: the file's name
    ctx = context(eo, "docs", "how do I mount a disk", budget=512)
    ctx.passages[0].citation                              # "manual.txt:1042-1873"

Chunking counts tokens with the collection model's own tokenizer (``Models.count_tokens``:
wordpieces for a transformer, TokenizerSpec tokens for a static model). Sentences (ends of
``.!?`` or blank lines) are packed whole up to ``chunk_tokens``; the next chunk starts with the
last sentences of the previous one that fit in ``overlap`` tokens (default a fifth of a
chunk); a sentence longer than a chunk is cut between words. Each chunk is an item
``<parent>#<n>`` with metadata ``parent_id``, ``start``, ``end`` (character offsets into the
parent text), ``chunk`` and ``tokens``; a document written again replaces its old chunks.

Retrieval runs ``Embedops.search`` (hybrid by default) for ``candidates`` chunks, drops exact
copies and chunks that mostly overlap a better one of the same parent, orders the rest by
maximal marginal relevance (``usecases.mmr``) and packs them greedily into ``budget`` tokens.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embedops.errors import InvalidInput
from embedops.usecases.mmr import mmr

if TYPE_CHECKING:
    from embedops.engine.facade import Embedops
    from embedops.search.models import Hit

# A sentence ends after .!? (and any closing quotes or brackets) before a space, or at a blank
# line; the group is the gap between two sentences.
_BREAK = re.compile(r"[.!?][\"')\]]*(\s+)|(\n\s*\n)")
_WORDS = re.compile(r"\S+")
TokenCount = Callable[[list[str]], list[int]]
Span = tuple[int, int, int]  # start, end, tokens
BATCH = 256
MAX_BUDGET = 100_000


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk: item id, parent id, character offsets into the parent, the search
    score, its tokens and text."""

    id: str
    parent_id: str
    start: int
    end: int
    score: float
    tokens: int
    text: str

    @property
    def citation(self) -> str:
        """``parent:start-end``."""
        return f"{self.parent_id}:{self.start}-{self.end}"

    def to_dict(self) -> dict[str, Any]:
        """JSON form, with the citation."""
        return {**asdict(self), "citation": self.citation}


@dataclass(frozen=True)
class RagContext:
    """Passages packed into ``budget`` tokens (``tokens_used``), in the order chosen."""

    query: str
    budget: int
    tokens_used: int
    passages: list[Passage] = field(default_factory=list)
    candidates: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"query": self.query, "budget": self.budget, "tokens_used": self.tokens_used,
                "candidates": self.candidates, "passages": [p.to_dict() for p in self.passages]}


# -- chunking ---------------------------------------------------------------------------------
def check_chunking(chunk_tokens: int, overlap: int | None) -> int:
    """The overlap to use (None: a fifth of a chunk); InvalidInput unless ``8 <= chunk_tokens``
    and ``0 <= overlap <= chunk_tokens / 2``."""
    if isinstance(chunk_tokens, bool) or not isinstance(chunk_tokens, int) or chunk_tokens < 8:
        raise InvalidInput(f"chunk_tokens must be an integer >= 8, got {chunk_tokens!r}")
    if overlap is None:
        return chunk_tokens // 5
    if isinstance(overlap, bool) or not isinstance(overlap, int) or \
            not 0 <= overlap <= chunk_tokens // 2:
        raise InvalidInput(f"overlap must be an integer in 0..{chunk_tokens // 2} (half a "
                           f"chunk), got {overlap!r}")
    return overlap


def sentences(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence of ``text``, surrounding spaces left out."""
    out: list[tuple[int, int]] = []
    begin = 0
    for m in [*_BREAK.finditer(text), None]:
        group = 0 if m is None else (1 if m.group(1) is not None else 2)
        stop = len(text) if m is None else m.start(group)
        piece = text[begin:stop]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            out.append((begin + lead, begin + len(piece.rstrip())))
        begin = len(text) if m is None else m.end(group)
    return out


def chunk_spans(text: str, count: TokenCount, chunk_tokens: int = 200,
                overlap: int | None = None) -> list[Span]:
    """Chunks of ``text`` as ``(start, end, tokens)``: whole sentences up to ``chunk_tokens``
    (``count`` gives tokens of each text), consecutive chunks sharing up to ``overlap``
    tokens of whole sentences (default a fifth of a chunk)."""
    overlap = check_chunking(chunk_tokens, overlap)
    units = _units(text, count, chunk_tokens)
    chunks: list[Span] = []
    first = 0
    while first < len(units):
        last, used = first, 0
        while last < len(units) and (last == first or used + units[last][2] <= chunk_tokens):
            used += units[last][2]
            last += 1
        chunks.append((units[first][0], units[last - 1][1], used))
        if last == len(units):
            break
        back, shared = last, 0
        while back - 1 > first and shared + units[back - 1][2] <= overlap:
            back -= 1
            shared += units[back][2]
        first = back
    return chunks


def _units(text: str, count: TokenCount, chunk_tokens: int) -> list[Span]:
    """Sentences with their tokens; a sentence over ``chunk_tokens`` cut between words."""
    spans = sentences(text)
    tokens = count([text[a:b] for a, b in spans])
    out: list[Span] = []
    for (a, b), n in zip(spans, tokens, strict=True):
        if n <= chunk_tokens:
            out.append((a, b, n))
            continue
        words = [(a + m.start(), a + m.end()) for m in _WORDS.finditer(text[a:b])]
        sizes = count([text[s:e] for s, e in words])
        piece_start, prev_end, used = words[0][0], words[0][1], 0
        for (s, e), w in zip(words, sizes, strict=True):
            if used and used + w > chunk_tokens:
                out.append((piece_start, prev_end, used))
                piece_start, used = s, 0
            used += w
            prev_end = e
        out.append((piece_start, prev_end, used))
    return out


def token_counter(eo: Embedops, model: str) -> TokenCount:
    """Tokens of each text under ``model``'s own tokenizer, without the special tokens a
    transformer adds around every text (so that sentence counts add up)."""
    special = max(0, eo.models.count_tokens(["a"], model).tokens[0] - 1)

    def count(texts: list[str]) -> list[int]:
        if not texts:
            return []
        got = eo.models.count_tokens(texts, model).tokens
        return [max(1, n - special) if t.strip() else 0 for t, n in zip(texts, got, strict=True)]

    return count


# -- writing ----------------------------------------------------------------------------------
def add_documents(eo: Embedops, collection: str, documents: Sequence[Mapping[str, Any]],
                  chunk_tokens: int = 200, overlap: int | None = None) -> dict[str, int]:
    """Chunk ``documents`` (``{"id", "text", "metadata"}``) into items of ``collection``
    (``overlap`` None: a fifth of ``chunk_tokens``); returns ``{"documents", "chunks",
    "written", "removed"}``."""
    overlap = check_chunking(chunk_tokens, overlap)
    if isinstance(documents, Mapping) or not documents:
        raise InvalidInput("documents must be a non-empty list of {id, text, metadata}")
    count = token_counter(eo, eo.collection_info(collection).model_version)
    report = {"documents": 0, "chunks": 0, "written": 0, "removed": 0}
    batch: list[dict[str, Any]] = []
    for n, doc in enumerate(documents):
        parent, text, meta = _document(n, doc)
        spans = chunk_spans(text, count, chunk_tokens, overlap)
        # Tokens of each chunk's own text (joining sentences may merge a token or two).
        exact = count([text[a:b] for a, b, _ in spans])
        spans = [(a, b, t) for (a, b, _), t in zip(spans, exact, strict=True)]
        chunks = [{"id": f"{parent}#{i}", "text": text[a:b],
                   "metadata": {**meta, "parent_id": parent, "start": a, "end": b,
                                "chunk": i, "tokens": t}}
                  for i, (a, b, t) in enumerate(spans)]
        stale = set(eo.ids_where(collection, {"parent_id": parent})) - {c["id"] for c in chunks}
        report["removed"] += eo.delete_items(collection, sorted(stale)) if stale else 0
        report["documents"] += 1
        report["chunks"] += len(chunks)
        batch += chunks
        if len(batch) >= BATCH:
            report["written"] += eo.upsert_items(collection, batch)["written"]
            batch = []
    if batch:
        report["written"] += eo.upsert_items(collection, batch)["written"]
    return report


def ingest_files(eo: Embedops, collection: str, paths: Sequence[str | Path],
                 chunk_tokens: int = 200, overlap: int | None = None) -> dict[str, int]:
    """Chunk long UTF-8 text files (a folder: its ``*.txt`` and ``*.md`` files) into
    ``collection``; a file's parent id is its name (its path below a named folder)."""
    docs: list[dict[str, Any]] = []
    for path in _files(paths):
        file, label = path
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{label} is not UTF-8 text", "convert it to UTF-8") from None
        if text.strip():
            docs.append({"id": label, "text": text, "metadata": {"source": label}})
    if not docs:
        raise InvalidInput("no text to ingest: the files are empty",
                           "name .txt or .md files with text in them")
    return add_documents(eo, collection, docs, chunk_tokens, overlap)


def _files(paths: Sequence[str | Path]) -> list[tuple[Path, str]]:
    out: list[tuple[Path, str]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in (".txt", ".md")
                           and p.is_file())
            out += [(p, p.relative_to(path).as_posix()) for p in found]
        elif path.is_file():
            out.append((path, path.name))
        else:
            raise InvalidInput(f"no such file or folder: {path.name}", "check the path")
    return out


def _document(n: int, doc: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
    if not isinstance(doc, Mapping):
        raise InvalidInput(f"document {n} is not an object", "send {id, text, metadata}")
    parent, text, meta = doc.get("id"), doc.get("text"), doc.get("metadata") or {}
    if not isinstance(parent, str) or not parent or "#" in parent:
        raise InvalidInput(f"document {n} needs a string id without '#'",
                           "'#' separates a parent id from its chunk number")
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(f"document '{parent}' has no text")
    if not isinstance(meta, Mapping):
        raise InvalidInput(f"the metadata of document '{parent}' must be an object")
    return parent, text, dict(meta)


# -- retrieval --------------------------------------------------------------------------------
def context(eo: Embedops, collection: str, query: str, budget: int = 512,
            candidates: int = 50, diversity: float = 0.3, mode: str = "hybrid",
            filters: Mapping[str, Any] | None = None) -> RagContext:
    """Passages for ``query`` that fit in ``budget`` tokens, best and most varied first."""
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("the query is empty", "pass the question to find context for")
    if isinstance(budget, bool) or not isinstance(budget, int) or not 1 <= budget <= MAX_BUDGET:
        raise InvalidInput(f"budget must be an integer in 1..{MAX_BUDGET} tokens, got {budget!r}")
    if isinstance(candidates, bool) or not isinstance(candidates, int) or \
            not 1 <= candidates <= 1000:
        raise InvalidInput(f"candidates must be an integer in 1..1000, got {candidates!r}")
    version = eo.collection_info(collection).model_version
    hits = _dedupe(eo.search(collection, query, candidates, mode, filters).hits)
    if not hits:
        return RagContext(query, budget, 0, [], 0)
    found, x = eo.load_vectors(collection, version, [h.id for h in hits])
    row = {i: n for n, i in enumerate(found)}
    hits = [h for h in hits if h.id in row]
    scores = np.array([h.score for h in hits], dtype=np.float64)
    relevance = scores / max(float(scores.max()), 1e-12)
    order = mmr(relevance, x[[row[h.id] for h in hits]], len(hits), diversity)
    passages = _passages(eo, version, [hits[i] for i in order])
    chosen: list[Passage] = []
    used = 0
    for p in passages:
        if used + p.tokens <= budget:
            chosen.append(p)
            used += p.tokens
    if not chosen:
        raise InvalidInput(
            f"a token budget of {budget} is below one passage: the smallest retrieved passage "
            f"has {min(p.tokens for p in passages)} tokens",
            "raise the budget, or chunk the documents with fewer tokens per chunk")
    return RagContext(query, budget, used, chosen, len(hits))


def _dedupe(hits: Sequence[Hit]) -> list[Hit]:
    """Hits without exact text copies and without chunks whose span is mostly inside a better
    hit's span of the same parent."""
    seen_text: set[str] = set()
    spans: dict[str, list[tuple[int, int]]] = {}
    out: list[Hit] = []
    for h in hits:
        norm = " ".join(h.text.lower().split())
        if norm in seen_text:
            continue
        parent, start, end = _span(h)
        overlap = max((min(end, b) - max(start, a) for a, b in spans.get(parent, [])),
                      default=0)
        if overlap * 2 > max(1, end - start):
            continue
        seen_text.add(norm)
        spans.setdefault(parent, []).append((start, end))
        out.append(h)
    return out


def _span(h: Hit) -> tuple[str, int, int]:
    meta = h.metadata
    if isinstance(meta.get("parent_id"), str) and isinstance(meta.get("start"), int) \
            and isinstance(meta.get("end"), int):
        return meta["parent_id"], meta["start"], meta["end"]
    return h.id, 0, len(h.text)


def _passages(eo: Embedops, version: str, hits: list[Hit]) -> list[Passage]:
    """Passages of hits; an item not written by ``add_documents`` is its own parent, and its
    tokens are counted now."""
    uncounted = [h.text for h in hits if not isinstance(h.metadata.get("tokens"), int)]
    counted = iter(token_counter(eo, version)(uncounted) if uncounted else [])
    out: list[Passage] = []
    for h in hits:
        tokens = h.metadata.get("tokens")
        parent, start, end = _span(h)
        out.append(Passage(h.id, parent, start, end, h.score,
                           tokens if isinstance(tokens, int) else next(counted), h.text))
    return out
