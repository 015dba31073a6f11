"""Cluster a collection (or a filter of it): k-means over its active-version vectors, with a k
sweep scored by silhouette, or HDBSCAN (``method="hdbscan"``: density-based, the number of
clusters found from the data, items in no dense region reported as noise with label -1); each
cluster named by its most distinctive terms (class-based
TF-IDF) and its items nearest to the centroid; NMI/ARI against a label field when given.

``store=True`` writes each item's cluster into its metadata under ``cluster_<model>_<n>`` (one
key per model version, so assignments of two versions live side by side and can be filtered on).
The catalog's content hash covers metadata, so the engine re-embeds a stored item when its
metadata changes: storing assignments costs one embedding pass over the clustered items.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from embedops.errors import InvalidInput

if TYPE_CHECKING:
    from embedops.engine.facade import Embedops

MIN_PER_CLUSTER = 2
METHODS = ("kmeans", "hdbscan")
NOISE = -1
SILHOUETTE_SAMPLE = 3000
_WORD = re.compile(r"[^\W\d_]{3,}")


@dataclass(frozen=True)
class Cluster:
    """One cluster: its number, size, distinctive terms and nearest-to-centroid item ids."""

    cluster: int
    size: int
    terms: list[str]
    central: list[str]


@dataclass(frozen=True)
class ClusterReport:
    """The chosen ``k`` (clusters found, for HDBSCAN), silhouette per tried k (HDBSCAN: of the
    clustered items), the clusters, the agreement with labels, and the items left as noise
    (HDBSCAN; their assignment is -1)."""

    model_version: str
    k: int
    silhouette: dict[int, float]
    clusters: list[Cluster]
    assignments: dict[str, int] = field(repr=False)
    metadata_key: str | None = None
    nmi: float | None = None
    ari: float | None = None
    method: str = "kmeans"
    noise: int = 0

    def to_dict(self, with_assignments: bool = False) -> dict[str, Any]:
        """JSON form (assignments only when asked: they are one entry per item)."""
        out = asdict(self)
        out["silhouette"] = {str(k): v for k, v in self.silhouette.items()}
        if not with_assignments:
            out.pop("assignments")
        return out


def metadata_key(version: str) -> str:
    """The metadata field that holds cluster assignments of ``version`` (``cluster_w2v_1``)."""
    return "cluster_" + re.sub(r"\W", "_", version)


def cluster(eo: Embedops, collection: str, k: int | Sequence[int] = (2, 4, 8, 16),
            filters: Mapping[str, Any] | None = None, label_field: str | None = None,
            store: bool = False, seed: int = 0, terms: int = 5, central: int = 3,
            method: str = "kmeans", min_cluster_size: int = 5) -> ClusterReport:
    """Cluster ``collection`` (items passing ``filters``) with k-means (a list of ``k`` is a
    sweep that keeps the best silhouette) or HDBSCAN (``min_cluster_size`` items at least per
    cluster; ``k`` is not used)."""
    if method not in METHODS:
        raise InvalidInput(f"unknown clustering method {method!r}", f"use one of {METHODS}")
    version = eo.collection_info(collection).model_version
    ids, x = eo.load_vectors(collection, version, eo.ids_where(collection, filters))
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    if method == "kmeans":
        labels, centroids, scores = _kmeans(x, k, seed)
    else:
        labels, centroids, scores = _hdbscan(x, min_cluster_size, seed)
    items = eo.get_items(collection, ids)
    texts = [it.text for it in items]
    clusters = [_describe(c, labels, x, centroids[c], ids, texts, terms, central)
                for c in range(len(centroids))]
    nmi = ari = None
    if label_field:
        nmi, ari = _agreement(labels, [it.metadata.get(label_field) for it in items],
                              label_field)
    key = None
    if store:
        key = metadata_key(version)
        eo.upsert_items(collection, [{"id": it.id, "text": it.text,
                                      "metadata": {**it.metadata, key: int(c)}}
                                     for it, c in zip(items, labels, strict=True)])
    return ClusterReport(version, len(centroids), scores, clusters,
                         {i: int(c) for i, c in zip(ids, labels, strict=True)}, key, nmi, ari,
                         method, int((labels == NOISE).sum()))


def _kmeans(x: np.ndarray, k: int | Sequence[int], seed: int
            ) -> tuple[np.ndarray, np.ndarray, dict[int, float]]:
    ks = sorted({k} if isinstance(k, int) else set(k))
    if not ks or any(isinstance(v, bool) or not isinstance(v, int) or v < 2 for v in ks):
        raise InvalidInput(f"k must be integers >= 2, got {k!r}")
    if len(x) < MIN_PER_CLUSTER * ks[0] or len(x) < 3:
        raise InvalidInput(f"too few items to cluster: {len(x)} for k={ks[0]}",
                           f"need at least {MIN_PER_CLUSTER * ks[0]} items, or a smaller k")
    ks = [v for v in ks if v * MIN_PER_CLUSTER <= len(x)]
    (labels, centroids), scores = _sweep(x, ks, seed)
    return labels, centroids, scores


def _hdbscan(x: np.ndarray, min_cluster_size: int, seed: int
             ) -> tuple[np.ndarray, np.ndarray, dict[int, float]]:
    from sklearn.cluster import HDBSCAN
    from sklearn.metrics import silhouette_score

    if isinstance(min_cluster_size, bool) or not isinstance(min_cluster_size, int) or \
            min_cluster_size < 2:
        raise InvalidInput(f"min_cluster_size must be an integer >= 2, got {min_cluster_size!r}")
    if len(x) < max(3, min_cluster_size):
        raise InvalidInput(f"too few items to cluster: {len(x)} for min_cluster_size="
                           f"{min_cluster_size}",
                           f"need at least {max(3, min_cluster_size)} items, or a smaller "
                           "min_cluster_size")
    # Euclidean distance on unit vectors orders pairs as cosine does.
    labels = HDBSCAN(min_cluster_size=min_cluster_size, copy=True).fit(x).labels_
    found = sorted(set(labels.tolist()) - {NOISE})
    centroids = np.stack([x[labels == c].mean(0) for c in found]) if found else \
        np.zeros((0, x.shape[1]), dtype=x.dtype)
    scores: dict[int, float] = {}
    kept = labels != NOISE
    if len(found) > 1:
        scores[len(found)] = float(silhouette_score(
            x[kept], labels[kept], random_state=seed,
            sample_size=min(SILHOUETTE_SAMPLE, int(kept.sum()))))
    return labels, centroids, scores


def _sweep(x: np.ndarray, ks: list[int], seed: int
           ) -> tuple[tuple[np.ndarray, np.ndarray], dict[int, float]]:
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    scores: dict[int, float] = {}
    best: tuple[np.ndarray, np.ndarray] | None = None
    best_score = -np.inf
    for k in ks:
        km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(x)
        scores[k] = -1.0
        if len(set(km.labels_)) > 1:
            scores[k] = float(silhouette_score(x, km.labels_, random_state=seed,
                                               sample_size=min(SILHOUETTE_SAMPLE, len(x))))
        if best is None or scores[k] > best_score:
            best, best_score = (km.labels_, km.cluster_centers_), scores[k]
    assert best is not None
    return best, scores


def _describe(c: int, labels: np.ndarray, x: np.ndarray, centroid: np.ndarray,
              ids: list[str], texts: list[str], n_terms: int, n_central: int) -> Cluster:
    members = np.flatnonzero(labels == c)
    near = members[np.argsort(-(x[members] @ centroid), kind="stable")[:n_central]]
    inside = Counter(w for i in members for w in set(_WORD.findall(texts[i].lower())))
    overall = Counter(w for t in texts for w in set(_WORD.findall(t.lower())))
    n = len(texts)

    def score(w: str) -> float:
        return inside[w] / len(members) * float(np.log(n / overall[w]))

    top = sorted(inside, key=lambda w: (-score(w), w))[:n_terms]
    return Cluster(c, len(members), top, [ids[i] for i in near])


def _agreement(labels: np.ndarray, gold: list[Any], field_name: str) -> tuple[float, float]:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    keep = [i for i, g in enumerate(gold) if g is not None]
    if not keep:
        raise InvalidInput(f"no clustered item has a '{field_name}' metadata field",
                           "name a label field the items carry, or leave it out")
    truth = [str(gold[i]) for i in keep]
    pred = labels[keep]
    return (float(normalized_mutual_info_score(truth, pred)),
            float(adjusted_rand_score(truth, pred)))
