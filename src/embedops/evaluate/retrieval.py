"""Ranking metrics for retrieval: recall@k, precision@k, MRR@k, nDCG@k.

``ranked`` is the list of returned ids, best first; ``relevant`` the set of relevant ids, or a
mapping id → graded relevance (> 0 is relevant) for nDCG.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Relevance = Mapping[str, float] | Sequence[str] | set[str]


def _grades(relevant: Relevance) -> dict[str, float]:
    if isinstance(relevant, Mapping):
        return {k: float(v) for k, v in relevant.items() if float(v) > 0}
    return {k: 1.0 for k in relevant}


def recall_at_k(ranked: Sequence[str], relevant: Relevance, k: int) -> float:
    """Share of relevant ids found in the top ``k`` (0 when nothing is relevant)."""
    rel = _grades(relevant)
    return len(rel.keys() & set(ranked[:k])) / len(rel) if rel else 0.0


def precision_at_k(ranked: Sequence[str], relevant: Relevance, k: int) -> float:
    """Share of the top ``k`` slots holding a relevant id."""
    rel = _grades(relevant)
    return sum(1 for r in ranked[:k] if r in rel) / k


def mrr_at_k(ranked: Sequence[str], relevant: Relevance, k: int) -> float:
    """1 / rank of the first relevant id within the top ``k``, else 0."""
    rel = _grades(relevant)
    for rank, rid in enumerate(ranked[:k], start=1):
        if rid in rel:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranked: Sequence[str], relevant: Relevance, k: int) -> float:
    """Normalized discounted cumulative gain with gains ``2^rel - 1``."""
    rel = _grades(relevant)
    dcg = sum(
        (2 ** rel[rid] - 1) / math.log2(rank + 1)
        for rank, rid in enumerate(ranked[:k], start=1)
        if rid in rel
    )
    ideal = sorted(rel.values(), reverse=True)[:k]
    idcg = sum((2**g - 1) / math.log2(rank + 1) for rank, g in enumerate(ideal, start=1))
    return dcg / idcg if idcg else 0.0


@dataclass(frozen=True)
class RetrievalScores:
    """Mean metrics over a query set, keyed ``recall@10`` etc."""

    n_queries: int
    scores: dict[str, float]

    def __getitem__(self, key: str) -> float:
        return self.scores[key]


def evaluate_run(
    runs: Sequence[Sequence[str]], qrels: Sequence[Relevance], ks: Sequence[int] = (10,)
) -> RetrievalScores:
    """Mean recall, precision, MRR and nDCG at each k over aligned (ranked, relevant) pairs."""
    if len(runs) != len(qrels):
        raise ValueError(f"{len(runs)} result lists for {len(qrels)} queries")
    n = len(runs)
    out: dict[str, float] = {}
    for k in ks:
        for name, fn in (
            ("recall", recall_at_k),
            ("precision", precision_at_k),
            ("mrr", mrr_at_k),
            ("ndcg", ndcg_at_k),
        ):
            total = sum(fn(r, q, k) for r, q in zip(runs, qrels, strict=True))
            out[f"{name}@{k}"] = total / max(n, 1)
    return RetrievalScores(n, out)
