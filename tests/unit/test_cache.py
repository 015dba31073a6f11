"""The query-embedding LRU: bounded, keyed by model version, counted, thread-safe."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from embedops.errors import InvalidInput
from embedops.serve.cache import EmbeddingCache, cache_key


def _vec(x: float) -> np.ndarray:
    return np.full(4, x, dtype=np.float32)


def test_hit_miss_and_lru_eviction() -> None:
    cache = EmbeddingCache(2)
    assert cache.get("m@1", "a") is None
    cache.put("m@1", "a", _vec(1))
    cache.put("m@1", "b", _vec(2))
    assert cache.get("m@1", "a")[0] == 1  # touch a: b is now the oldest
    cache.put("m@1", "c", _vec(3))
    assert cache.get("m@1", "b") is None and len(cache) == 2
    assert cache.hits == 1 and cache.misses == 2
    assert cache.hit_ratio == pytest.approx(1 / 3)


def test_keyed_by_model_version_and_normalized_text() -> None:
    cache = EmbeddingCache(10)
    cache.put("m@1", "hello   world", _vec(1))
    assert cache.get("m@2", "hello world") is None
    assert cache.get("m@1", " hello world\n")[0] == 1
    assert cache_key("m@1", "Case") != cache_key("m@1", "case")  # models may be cased
    stored = cache.get("m@1", "hello world")
    with pytest.raises(ValueError):
        stored[0] = 5  # read-only: a caller cannot corrupt the cache


def test_get_many_computes_only_misses() -> None:
    cache = EmbeddingCache(10)
    calls: list[list[str]] = []

    def compute(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        return np.stack([_vec(len(t)) for t in texts])

    first, hits = cache.get_many("m@1", ["a", "bb"], compute)
    second, hits2 = cache.get_many("m@1", ["bb", "ccc", "a"], compute)
    assert calls == [["a", "bb"], ["ccc"]]
    assert (hits, hits2) == (0, 2)
    assert second[:, 0].tolist() == [2, 3, 1]


def test_size_zero_disables_and_negative_is_refused() -> None:
    cache = EmbeddingCache(0)
    cache.put("m@1", "a", _vec(1))
    assert len(cache) == 0
    with pytest.raises(InvalidInput):
        EmbeddingCache(-1)


def test_threads_never_exceed_the_bound() -> None:
    cache = EmbeddingCache(50)

    def work(offset: int) -> None:
        for i in range(500):
            cache.put("m@1", str((i + offset) % 120), _vec(i))
            cache.get("m@1", str(i % 120))

    threads = [threading.Thread(target=work, args=(n * 7,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 50
    assert cache.hits + cache.misses == 2000
