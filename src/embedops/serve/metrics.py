"""Prometheus metrics, in a CollectorRegistry of each app's own (two apps in one process —
tests, blue/green — never share or clash on counters).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

#: What the scrape-time collector asks for: {collection: {"items", "freshness_age_s", ...}}.
IndexStats = Callable[[], dict[str, dict[str, Any]]]


class _ScrapeCollector:
    """Gauges computed when /metrics is scraped: cache hit ratio, index size, freshness and
    consistency with the catalog."""

    def __init__(self, cache: Any, index_stats: IndexStats) -> None:
        self._cache = cache
        self._index_stats = index_stats

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        ratio = GaugeMetricFamily(
            "embedops_cache_hit_ratio", "Query-embedding cache hits / lookups since start"
        )
        ratio.add_metric([], self._cache.hit_ratio)
        yield ratio
        size = GaugeMetricFamily("embedops_cache_entries", "Entries in the embedding cache")
        size.add_metric([], len(self._cache))
        yield size
        items = GaugeMetricFamily(
            "embedops_index_items", "Items in the served index", labels=["collection"]
        )
        age = GaugeMetricFamily(
            "embedops_index_freshness_age_seconds",
            "Age of the oldest change not yet in the served index (0 = fresh)",
            labels=["collection"],
        )
        pending = GaugeMetricFamily(
            "embedops_index_pending_changes",
            "Changed or deleted items not yet in the served index",
            labels=["collection"],
        )
        consistent = GaugeMetricFamily(
            "embedops_index_consistent",
            "1 when the served index holds exactly the catalog's items (last check), 0 when "
            "they diverge (see /readyz and 'embedops index verify')",
            labels=["collection"],
        )
        divergent = GaugeMetricFamily(
            "embedops_index_divergent_items",
            "Items on one side only at the last check: index_only (the catalog lost them), "
            "catalog_only (the index lacks them)",
            labels=["collection", "side"],
        )
        memory = GaugeMetricFamily(
            "embedops_index_memory_bytes",
            "RAM held by the served index in this worker (codes, graph, id map, overlay; not "
            "vectors memory-mapped for rescoring)", labels=["collection"],
        )
        for name, stats in sorted(self._index_stats().items()):
            items.add_metric([name], float(stats.get("items", 0)))
            if "memory_bytes" in stats:
                memory.add_metric([name], float(stats["memory_bytes"]))
            age.add_metric([name], float(stats.get("freshness_age_s", 0.0)))
            pending.add_metric([name], float(stats.get("pending", 0)))
            if "consistent" in stats:
                consistent.add_metric([name], 1.0 if stats["consistent"] else 0.0)
                for side in ("index_only", "catalog_only"):
                    divergent.add_metric([name, side], float(stats.get(side, 0)))
        yield from (items, age, pending, consistent, divergent, memory)


class Metrics:
    """Every metric the service exports, registered in its own registry."""

    def __init__(self, cache: Any, index_stats: IndexStats) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram, Summary

        self.registry = CollectorRegistry()
        reg, buckets = self.registry, _LATENCY_BUCKETS
        self.request_seconds = Histogram(
            "embedops_http_request_seconds", "HTTP request latency",
            ["route", "method", "model_version"], registry=reg, buckets=buckets,
        )
        self.errors = Counter(
            "embedops_http_errors_total", "HTTP responses with status >= 400",
            ["route", "status"], registry=reg,
        )
        self.embed_seconds = Histogram(
            "embedops_embed_seconds", "Time to embed one request's texts (cache misses only)",
            ["model_version"], registry=reg, buckets=buckets,
        )
        self.search_seconds = Histogram(
            "embedops_search_seconds", "Search latency inside the service",
            ["mode", "backend"], registry=reg, buckets=buckets,
        )
        self.cache_lookups = Counter(
            "embedops_cache_lookups_total", "Embedding cache lookups", ["result"], registry=reg
        )
        self.oov_rate = Summary(
            "embedops_oov_rate", "Share of out-of-vocabulary tokens per text (static models)",
            ["model_version"], registry=reg,
        )
        self.vector_norm = Summary(
            "embedops_vector_norm", "L2 norm of the vectors returned by /v1/embed",
            ["model_version"], registry=reg,
        )
        self.registry.register(_ScrapeCollector(cache, index_stats))
        self.cache_hits = self.cache_lookups.labels("hit")
        self.cache_misses = self.cache_lookups.labels("miss")
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, looked up once per label set (``labels()`` costs a lock,
        a dict build and a validation on every call)."""
        key = (metric, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def search_timer(self, mode: str, backend: str) -> Any:
        """The ``embedops_search_seconds`` child for a search mode and index backend."""
        return self._child(self.search_seconds, mode, backend)

    def embed_timer(self, model_version: str) -> Any:
        """The ``embedops_embed_seconds`` child of a model version."""
        return self._child(self.embed_seconds, model_version)

    def timer(self, route: str, method: str, model_version: str) -> Any:
        """The request-latency child for these labels (looked up once: ``labels()`` is slow)."""
        return self._child(self.request_seconds, route, method, model_version)

    def error_counter(self, route: str, status: str) -> Any:
        """The ``embedops_http_errors_total`` child of a route and status."""
        return self._child(self.errors, route, status)

    def observe_vectors(self, model_version: str, vectors: np.ndarray) -> None:
        """Record the norm of each returned vector (a collapse to zero shows up here first)."""
        if vectors.size:
            summary = self.vector_norm.labels(model_version)
            for norm in np.linalg.norm(vectors, axis=1):
                summary.observe(float(norm))

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
