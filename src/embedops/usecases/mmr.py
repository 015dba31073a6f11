"""Maximal marginal relevance: pick items relevant to a query but unlike those picked already."""

from __future__ import annotations

import numpy as np

from embedops.errors import InvalidInput


def mmr(relevance: np.ndarray, vectors: np.ndarray, k: int, diversity: float) -> list[int]:
    """Indices of ``k`` rows chosen greedily by ``(1 - diversity) * relevance - diversity *
    max similarity to the rows already chosen``; ``diversity`` 0 keeps the relevance order.
    ``vectors`` are unit rows (cosine = dot product)."""
    if not 0.0 <= diversity <= 1.0:
        raise InvalidInput(f"diversity must be in [0, 1], got {diversity}",
                           "0 ranks by relevance only, 1 by novelty only")
    n = len(relevance)
    k = min(k, n)
    if diversity == 0.0 or n == 0:
        return [int(i) for i in np.argsort(-relevance, kind="stable")[:k]]
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    chosen: list[int] = []
    closest = np.full(n, -np.inf, dtype=np.float64)
    free = np.ones(n, dtype=bool)
    for _ in range(k):
        penalty = np.where(np.isfinite(closest), closest, 0.0)
        score = (1 - diversity) * relevance - diversity * penalty
        score[~free] = -np.inf
        pick = int(np.argmax(score))
        chosen.append(pick)
        free[pick] = False
        closest = np.maximum(closest, unit @ unit[pick])
    return chosen
