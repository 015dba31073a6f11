"""More-like-this and recommendation, served from the collection's index (the same snapshot as
search).

    more_like_this(eo, "docs", positive=["a", "b"], negative=["c"], k=10, diversity=0.3)
    recommend(eo, "docs", history={"a": 3.0, "b": 1.0}, exclude=["a", "b"], filters={...})

The query is a profile vector: the weighted mean of the positive items' unit vectors, minus
``NEGATIVE_WEIGHT`` times the mean of the negative ones (Rocchio), searched with
``Embedops.search(vector=...)`` (filters as in search). Candidates are reranked by maximal
marginal relevance when ``diversity`` > 0. The examples themselves and ``exclude`` are never
returned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from embedops.errors import InvalidInput
from embedops.search.models import Hit
from embedops.usecases.mmr import mmr

if TYPE_CHECKING:
    from embedops.engine.facade import Embedops

NEGATIVE_WEIGHT = 0.5
MAX_K = 1000


def profile(eo: Embedops, collection: str, weights: Mapping[str, float],
            negative: Sequence[str] = ()) -> np.ndarray:
    """The unit profile vector of ``weights`` (id → weight > 0) and ``negative`` ids under the
    collection's active version; InvalidInput when nothing is left to build it from."""
    if any(not isinstance(w, int | float) or w < 0 for w in weights.values()):
        raise InvalidInput("weights must be non-negative numbers")
    version = eo.collection_info(collection).model_version
    pos = {i: float(w) for i, w in weights.items() if w > 0}
    if not pos:
        raise InvalidInput("the profile is empty: no positive item or weight",
                           "name at least one item id with a positive weight")
    found, x = eo.load_vectors(collection, version, list(pos))
    if not found:
        raise InvalidInput(f"none of the profile's items {sorted(pos)[:5]} are in collection "
                           f"'{collection}'", "check the ids")
    w = np.array([pos[i] for i in found], dtype=np.float32)
    vec = (w[:, None] * _unit(x)).sum(0) / w.sum()
    if negative:
        nfound, nx = eo.load_vectors(collection, version, list(negative))
        if nfound:
            vec = vec - NEGATIVE_WEIGHT * _unit(nx).mean(0)
    norm = float(np.linalg.norm(vec))
    if norm < 1e-9:
        raise InvalidInput("the profile vector is zero (positives and negatives cancel out)",
                           "use fewer or other negative examples")
    return np.asarray(vec / norm, dtype=np.float32)


def recommend(eo: Embedops, collection: str, history: Mapping[str, float],
              negative: Sequence[str] = (), exclude: Sequence[str] = (), k: int = 10,
              filters: Mapping[str, Any] | None = None, diversity: float = 0.0,
              candidates: int = 100) -> list[Hit]:
    """Items like the weighted ``history`` (and unlike ``negative``), best first; history,
    negatives and ``exclude`` are left out; ``diversity`` in [0, 1] turns on MMR."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise InvalidInput(f"k must be an integer in 1..{MAX_K}, got {k!r}")
    if not 0.0 <= diversity <= 1.0:
        raise InvalidInput(f"diversity must be in [0, 1], got {diversity}")
    vec = profile(eo, collection, history, negative)
    skip = set(history) | set(negative) | set(exclude)
    depth = min(MAX_K, max(candidates, k) + len(skip))
    hits = [h for h in eo.search(collection, None, depth, "dense", filters, vector=vec).hits
            if h.id not in skip]
    if diversity == 0.0 or not hits:
        return hits[:k]
    version = eo.collection_info(collection).model_version
    found, x = eo.load_vectors(collection, version, [h.id for h in hits])
    row = {i: n for n, i in enumerate(found)}
    hits = [h for h in hits if h.id in row]
    order = mmr(np.array([h.score for h in hits]), x[[row[h.id] for h in hits]], k, diversity)
    return [hits[i] for i in order]


def more_like_this(eo: Embedops, collection: str, positive: Sequence[str],
                   negative: Sequence[str] = (), exclude: Sequence[str] = (), k: int = 10,
                   filters: Mapping[str, Any] | None = None, diversity: float = 0.0
                   ) -> list[Hit]:
    """Items like ``positive`` (equal weights) and unlike ``negative``."""
    if isinstance(positive, str):
        raise InvalidInput("positive must be a list of ids")
    return recommend(eo, collection, dict.fromkeys(positive, 1.0), negative, exclude, k,
                     filters, diversity)


def _unit(x: np.ndarray) -> np.ndarray:
    return np.asarray(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12),
                      dtype=np.float32)
