"""Reciprocal rank fusion (Cormack et al. 2009) of ranked id lists, with per-list weights.

``score(d) = sum_i w_i / (k + rank_i(d))`` with ranks from 1; a list that misses ``d``
contributes nothing. RRF needs no score calibration between BM25 and cosine, which is why it
generalizes better than a weighted sum of raw scores.
"""

from __future__ import annotations

from collections.abc import Sequence

from embedops.errors import InvalidInput

RRF_K = 60
FUSION_DEPTH = 100




def check_weight(weight: float) -> float:
    """Validate a hybrid weight (share of the dense list, 0..1)."""
    if not isinstance(weight, int | float) or not 0.0 <= float(weight) <= 1.0:
        raise InvalidInput(
            f"hybrid_weight must be a number between 0 and 1, got {weight!r}",
            "0 = lexical only, 1 = dense only, 0.5 = equal weight; default 0.3",
        )
    return float(weight)


def rrf(
    ranked: Sequence[Sequence[str]],
    weights: Sequence[float] | None = None,
    k: int = RRF_K,
    limit: int | None = None,
) -> list[tuple[str, float]]:
    """Fuse ranked lists of ids (best first) into one list of (id, fused score), best first.

    Ties are broken by the best single rank, then by id, so the result is deterministic.
    """
    weights = list(weights) if weights is not None else [1.0] * len(ranked)
    if len(weights) != len(ranked):
        raise InvalidInput(f"{len(weights)} weights for {len(ranked)} ranked lists")
    if k < 1:
        raise InvalidInput(f"the RRF constant k must be >= 1, got {k}")
    fused: dict[str, float] = {}
    best: dict[str, int] = {}
    for ids, weight in zip(ranked, weights, strict=True):
        for rank, doc in enumerate(ids, start=1):
            fused[doc] = fused.get(doc, 0.0) + weight / (k + rank)
            best[doc] = min(best.get(doc, rank), rank)
    order = sorted(fused, key=lambda d: (-fused[d], best[d], d))
    if limit is not None:
        order = order[:limit]
    return [(d, fused[d]) for d in order]


def hybrid_fuse(
    dense: Sequence[str], lexical: Sequence[str], weight: float, limit: int, k: int = RRF_K
) -> list[tuple[str, float]]:
    """RRF of a dense and a lexical list; ``weight`` is the dense share (0..1)."""
    w = check_weight(weight)
    lists, weights = [], []
    if w > 0:
        lists.append(dense)
        weights.append(w)
    if w < 1:
        lists.append(lexical)
        weights.append(1.0 - w)
    return rrf(lists, weights, k=k, limit=limit)
