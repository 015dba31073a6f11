"""What both integrations need from a backend: an in-process ``Embedops`` or a remote ``Client``
(the same method names), batching, deletion by metadata filter, and maximal marginal relevance.

Only methods the two share are called here, so each integration works in process and over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import numpy as np

from embedops.search.models import Hit

if TYPE_CHECKING:
    from embedops.client import Client
    from embedops.engine import Embedops

    Backend: TypeAlias = Embedops | Client

# Items or ids per request: the server's default batch limit (``ServeSettings.max_batch``).
BATCH = 256
T = TypeVar("T")


def batches(rows: Sequence[T], size: int = BATCH) -> Iterator[Sequence[T]]:
    """``rows`` in consecutive slices of at most ``size``."""
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def is_remote(backend: Backend) -> bool:
    """True for a ``Client`` (no stored vectors over HTTP), False for an ``Embedops``."""
    from embedops.client import Client

    return isinstance(backend, Client)


def upsert(backend: Backend, collection: str, items: Sequence[dict[str, Any]]) -> None:
    """Write ``items`` in batches the server accepts."""
    for chunk in batches(items):
        backend.upsert_items(collection, chunk)


def delete_ids(backend: Backend, collection: str, ids: Sequence[str]) -> int:
    """Delete items by id in batches; returns how many went."""
    return sum(backend.delete_items(collection, chunk) for chunk in batches(ids))


def delete_where(backend: Backend, collection: str,
                 filters: Mapping[str, Any] | None) -> int:
    """Delete every live item matching ``filters`` (all items when None); returns how many."""
    return delete_ids(backend, collection, backend.ids_where(collection, filters))


def hit_vectors(backend: Backend, collection: str, hits: Sequence[Hit]) -> np.ndarray:
    """float32 vectors of ``hits`` (rows in order): the stored ones in process, re-embedded
    from their texts with the same model version over HTTP (an encoder is deterministic)."""
    if not hits:
        return np.zeros((0, backend.collection_info(collection).dim), dtype=np.float32)
    version = hits[0].model_version or backend.collection_info(collection).model_version
    if is_remote(backend):
        return np.asarray(backend.embed([h.text for h in hits], model=version), np.float32)
    from embedops.engine import Embedops

    assert isinstance(backend, Embedops)
    ids, vectors = backend.load_vectors(collection, version, [h.id for h in hits])
    row = {item_id: i for i, item_id in enumerate(ids)}
    return np.asarray(vectors, np.float32)[[row[h.id] for h in hits]]


def mmr(query: np.ndarray, vectors: np.ndarray, k: int, lambda_mult: float) -> list[int]:
    """Rows of ``vectors`` chosen by maximal marginal relevance (cosine): each next row
    maximises ``lambda * sim(query) - (1 - lambda) * max sim(already chosen)``."""
    if len(vectors) == 0 or k <= 0:
        return []
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    q = np.asarray(query, np.float32).ravel()
    relevance = unit @ (q / max(float(np.linalg.norm(q)), 1e-12))
    chosen = [int(np.argmax(relevance))]
    redundancy = unit @ unit[chosen[0]]
    while len(chosen) < min(k, len(vectors)):
        score = lambda_mult * relevance - (1 - lambda_mult) * redundancy
        score[chosen] = -np.inf
        best = int(np.argmax(score))
        chosen.append(best)
        redundancy = np.maximum(redundancy, unit @ unit[best])
    return chosen


def relevance(metric: str, score: float) -> float:
    """An embedops score (higher is better) as a relevance in [0, 1] for unit vectors:
    cosine and inner product ``(1 + s) / 2``; l2 (score = minus squared distance)
    ``1 - distance / 2``."""
    if metric == "l2":
        return float(min(1.0, max(0.0, 1.0 - np.sqrt(max(-score, 0.0)) / 2.0)))
    return float(min(1.0, max(0.0, (1.0 + score) / 2.0)))
