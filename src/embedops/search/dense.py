"""Dense kNN with metadata filters over a served index.

A selective filter (at most ``PREFILTER_MAX`` matching items) is answered by exact search over
the matching items' vectors read from the catalog (pre-filter: always exact, always k results
when k exist). A broad filter post-filters the ANN results, over-fetching in proportion to how
selective the filter is and growing the fetch until k results pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from embedops.errors import InvalidInput, LimitExceeded
from embedops.search.filters import Filter
from embedops.search.models import MAX_K
from embedops.search.served import ServedIndex, exact_scores, prepare, top_pairs
from embedops.search.view import CollectionView

PREFILTER_MAX = 5000

VectorLoader = Callable[[Sequence[str]], tuple[list[str], np.ndarray]]


def check_k(k: int) -> int:
    """Validate ``k``: a positive integer up to ``MAX_K``."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise InvalidInput(f"k must be an integer, got {k!r}")
    if k <= 0:
        raise InvalidInput(f"k must be at least 1, got {k}", "ask for 1 to 1000 results")
    if k > MAX_K:
        raise LimitExceeded(f"k={k} is above the limit of {MAX_K}", "page with smaller k")
    return int(k)


def exact_search(
    query: np.ndarray, ids: Sequence[str], vectors: np.ndarray, metric: str, k: int
) -> list[tuple[str, float]]:
    """Brute-force top ``k`` of ``query`` over ``vectors`` (rows aligned with ``ids``)."""
    if len(ids) == 0:
        return []
    q = prepare(query.reshape(1, -1), metric)[0]
    return top_pairs(list(ids), exact_scores(q, prepare(vectors, metric), metric), k)


def dense_search(
    served: ServedIndex,
    query: np.ndarray,
    k: int,
    filt: Filter | None = None,
    view: CollectionView | None = None,
    load_vectors: VectorLoader | None = None,
    search_params: dict[str, Any] | None = None,
) -> list[tuple[str, float]]:
    """Top ``k`` (id, score) for ``query``; with ``filt``, ``view`` and ``load_vectors`` are
    needed to find the matching items and, when few match, to search them exactly.
    ``search_params`` tune the ANN index for this query (``Index.search``)."""
    if not filt:
        return served.search(query, k, search_params=search_params)
    if view is None or load_vectors is None:
        raise ValueError("a filtered dense search needs the collection view and a vector loader")
    allowed = view.matching(filt)
    if not allowed:
        return []
    if len(allowed) <= PREFILTER_MAX:
        ids, vectors = load_vectors(allowed)
        return exact_search(query, ids, vectors, served.metric, k)
    share = len(allowed) / max(view.count, 1)
    allowed_set = set(allowed)
    return served.search(
        query, k, accept=allowed_set.__contains__, fetch=math.ceil(1.5 * k / share) + 16,
        search_params=search_params,
    )
