"""Exact scores and top-k selection for result rows (higher is better, ``-1`` ids padding)."""

from __future__ import annotations

import numpy as np

from embedops.index.protocol import F32, IdArray


def exact_scores(queries: F32, vectors: np.ndarray, metric: str) -> F32:
    """Scores (higher is better) of each query against its own candidates ``(m, c, dim)``."""
    cand = vectors.astype(np.float32, copy=False)
    dots = np.matmul(cand, queries[:, :, None])[:, :, 0]
    if metric != "l2":
        return dots
    q2 = np.einsum("md,md->m", queries, queries)[:, None]
    x2 = np.einsum("mcd,mcd->mc", cand, cand)
    return (2.0 * dots - q2 - x2).astype(np.float32, copy=False)


def top_k(ids: IdArray, scores: F32, k: int) -> tuple[IdArray, F32]:
    """Keep the ``k`` best (ids, scores) of each row, best first; ``-1`` ids sort last."""
    scores = np.where(ids < 0, np.float32(-np.inf), scores)
    cols = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(ids, cols, axis=1), np.take_along_axis(scores, cols, axis=1)


def pad(ids: IdArray, scores: F32, k: int) -> tuple[IdArray, F32]:
    """Pad (or cut) results to exactly ``k`` columns: ``-1`` ids, ``-inf`` scores."""
    m, have = ids.shape
    if have >= k:
        return ids[:, :k], scores[:, :k]
    out_ids = np.full((m, k), -1, dtype=np.int64)
    out_scores = np.full((m, k), -np.inf, dtype=np.float32)
    out_ids[:, :have], out_scores[:, :have] = ids, scores
    return out_ids, out_scores
