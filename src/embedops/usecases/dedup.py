"""Near-duplicates through the ANN index, not all pairs: each item's nearest neighbours in the
served index, kept when the cosine passes ``threshold`` and the texts pass a lexical check
(token Jaccard >= ``lexical``); exact copies (same normalized text) are always kept. The report
lists pairs and groups (connected components), each group with a kept item (the oldest)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from embedops.errors import InvalidInput

if TYPE_CHECKING:
    from embedops.engine.facade import Embedops

_TOKEN = re.compile(r"\w+")


@dataclass(frozen=True)
class DuplicatePair:
    """Two items, their cosine and token Jaccard, and ``exact`` when the texts are equal."""

    a: str
    b: str
    cosine: float
    jaccard: float
    exact: bool


@dataclass(frozen=True)
class DuplicateReport:
    """Pairs found and groups (first id kept, the rest duplicates of it)."""

    model_version: str
    checked: int
    pairs: list[DuplicatePair]
    groups: list[list[str]]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


def find_duplicates(eo: Embedops, collection: str, threshold: float = 0.9,
                    lexical: float = 0.5, k: int = 10,
                    filters: Mapping[str, Any] | None = None) -> DuplicateReport:
    """Duplicate and near-duplicate items of ``collection`` (those passing ``filters``)."""
    if not 0.0 < threshold <= 1.0 or not 0.0 <= lexical <= 1.0:
        raise InvalidInput(f"threshold must be in (0, 1] and lexical in [0, 1], got "
                           f"{threshold} and {lexical}")
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= 1000:
        raise InvalidInput(f"k must be an integer in 2..1000, got {k!r}")
    version = eo.collection_info(collection).model_version
    ids, x = eo.load_vectors(collection, version, eo.ids_where(collection, filters))
    texts = {it.id: it.text for it in eo.get_items(collection, ids)}
    order = {i: n for n, i in enumerate(ids)}
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    pairs: dict[tuple[str, str], DuplicatePair] = {}
    for i, vec in zip(ids, x, strict=True):
        for j, _ in eo.search_vector(collection, version, vec, k):
            if j == i or j not in order or (min(i, j), max(i, j)) in pairs:
                continue
            pair = _check(i, j, float(vec @ x[order[j]]), texts, threshold, lexical)
            if pair is not None:
                pairs[(min(i, j), max(i, j))] = pair
    found = sorted(pairs.values(), key=lambda p: (-p.cosine, p.a, p.b))
    return DuplicateReport(version, len(ids), found, _groups(found, order))


def _check(i: str, j: str, cos: float, texts: Mapping[str, str], threshold: float,
           lexical: float) -> DuplicatePair | None:
    a, b = (i, j) if i < j else (j, i)
    ta, tb = _norm(texts[a]), _norm(texts[b])
    if ta == tb:
        return DuplicatePair(a, b, cos, 1.0, True)
    sa, sb = set(ta.split()), set(tb.split())
    jac = len(sa & sb) / max(1, len(sa | sb))
    if cos >= threshold and jac >= lexical:
        return DuplicatePair(a, b, cos, jac, False)
    return None


def _norm(text: str) -> str:
    return " ".join(_TOKEN.findall(text.lower()))


def _groups(pairs: list[DuplicatePair], order: Mapping[str, int]) -> list[list[str]]:
    parent: dict[str, str] = {}

    def root(v: str) -> str:
        while parent.setdefault(v, v) != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    for p in pairs:
        ra, rb = root(p.a), root(p.b)
        if ra != rb:
            parent[max(ra, rb, key=order.__getitem__)] = min(ra, rb, key=order.__getitem__)
    groups: dict[str, list[str]] = {}
    for v in parent:
        groups.setdefault(root(v), []).append(v)
    return sorted((sorted(g, key=order.__getitem__) for g in groups.values()),
                  key=lambda g: order[g[0]])
