"""The query-embedding cache, placed between the facade and its encoders.

The facade's ``ModelHub.encoder(ref)`` hands out one encoder per model version; the service
wraps each in a ``CachedEncoder``. The wrapper consults the cache only inside ``caching()``
(which the embed and search routes enter), so documents embedded by an upsert never push
queries out of the cache. Everything else passes straight through to the real encoder.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from embedops.engine import Embedops


@dataclass
class CacheUse:
    """Cache lookups made while one request was being answered."""

    hits: int = 0
    misses: int = 0


_ACTIVE: ContextVar[CacheUse | None] = ContextVar("embedops_query_cache", default=None)


@contextlib.contextmanager
def caching() -> Iterator[CacheUse]:
    """Use the query cache for encodes made in this block (this thread/context only)."""
    use = CacheUse()
    token = _ACTIVE.set(use)
    try:
        yield use
    finally:
        _ACTIVE.reset(token)


class CachedEncoder:
    """An Encoder that answers from the cache inside ``caching()`` and times real encodes."""

    def __init__(self, inner: Any, cache: Any, metrics: Any) -> None:
        self.inner, self.cache, self.metrics = inner, cache, metrics

    @property
    def dim(self) -> int:
        return int(self.inner.dim)

    @property
    def version(self) -> str:
        return str(self.inner.version)

    @property
    def tokenizer_fingerprint(self) -> str:
        return str(self.inner.tokenizer_fingerprint)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _timed(self, texts: list[str], batch_size: int) -> np.ndarray:
        started = time.perf_counter()
        out = np.asarray(self.inner.encode(texts, batch_size=batch_size), dtype=np.float32)
        self.metrics.embed_timer(self.version).observe(time.perf_counter() - started)
        return out

    def _timed_queries(self, texts: list[str]) -> np.ndarray:
        started = time.perf_counter()
        out = np.asarray(self.inner.encode_queries(texts), dtype=np.float32)
        self.metrics.embed_timer(self.version).observe(time.perf_counter() - started)
        return out

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Query vectors (the model's query prompt), cached apart from document vectors of
        the same text when the model gives queries a prompt of their own."""
        if not getattr(self.inner, "query_prompt_name", None) or not hasattr(
                self.inner, "encode_queries"):
            return self.encode(texts)
        return self._cached(list(texts), f"{self.version}#query", self._timed_queries)

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Like the inner encoder's ``encode``; cached vectors are reused inside ``caching()``."""
        return self._cached(list(texts), self.version,
                            lambda missing: self._timed(missing, batch_size))

    def _cached(self, texts: list[str], key: str,
                encode: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        use = _ACTIVE.get()
        if use is None or not texts:
            return encode(texts)
        vectors, hits = self.cache.get_many(key, texts, encode)
        use.hits += hits
        use.misses += len(texts) - hits
        self.metrics.cache_hits.inc(hits)
        self.metrics.cache_misses.inc(len(texts) - hits)
        return np.asarray(vectors)


def install_query_cache(api: Embedops, cache: Any, metrics: Any) -> None:
    """Wrap every encoder that ``api.models`` hands out (once per model version), through the
    hub's ``wrap_encoders`` hook."""
    api.models.wrap_encoders(lambda inner: CachedEncoder(inner, cache, metrics))
