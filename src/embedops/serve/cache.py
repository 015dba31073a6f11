"""An LRU cache of query embeddings keyed by (model version, normalized text).

Keyed by the model version, so a rollout never serves a vector of the old model for the new one;
text is normalized only in ways that no tokenizer distinguishes (Unicode NFC, runs of whitespace),
so a hit returns exactly the vector that encoding the text would.
"""

from __future__ import annotations

import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

from embedops.errors import InvalidInput


def cache_key(model_version: str, text: str) -> tuple[str, str]:
    """The key of ``text`` encoded by ``model_version``."""
    return model_version, " ".join(unicodedata.normalize("NFC", text).split())


class EmbeddingCache:
    """A thread-safe LRU of float32 vectors bounded in entries, with hit and miss counters."""

    def __init__(self, max_entries: int) -> None:
        if max_entries < 0:
            raise InvalidInput(f"cache size must be >= 0, got {max_entries}")
        self.max_entries = max_entries
        self._data: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    def get(self, model_version: str, text: str) -> np.ndarray | None:
        """The cached vector (counted as a hit) or None (counted as a miss)."""
        key = cache_key(model_version, text)
        with self._lock:
            vec = self._data.get(key)
            if vec is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return vec

    def contains(self, model_version: str, text: str) -> bool:
        """Whether ``text`` is cached for ``model_version`` (not counted, order unchanged)."""
        return cache_key(model_version, text) in self._data

    def put(self, model_version: str, text: str, vector: np.ndarray) -> None:
        """Store a vector (read-only copy), evicting the least recently used beyond the bound."""
        if self.max_entries == 0:
            return
        vec = np.array(vector, dtype=np.float32, copy=True)
        vec.flags.writeable = False
        key = cache_key(model_version, text)
        with self._lock:
            self._data[key] = vec
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def get_many(
        self,
        model_version: str,
        texts: Sequence[str],
        compute: Callable[[list[str]], np.ndarray],
    ) -> tuple[np.ndarray, int]:
        """Vectors of ``texts``: cached ones reused, the rest from one ``compute(missing)`` call.

        Returns (float32 array (len(texts), dim), number of cache hits).
        """
        found: dict[int, np.ndarray] = {}
        for i, text in enumerate(texts):
            vec = self.get(model_version, text)
            if vec is not None:
                found[i] = vec
        missing = [i for i in range(len(texts)) if i not in found]
        if missing:
            fresh = np.asarray(compute([texts[i] for i in missing]), dtype=np.float32)
            for row, i in enumerate(missing):
                found[i] = fresh[row]
                self.put(model_version, texts[i], fresh[row])
        if not texts:
            return np.zeros((0, 0), dtype=np.float32), 0
        return np.stack([found[i] for i in range(len(texts))]), len(texts) - len(missing)

    @property
    def hit_ratio(self) -> float:
        """hits / (hits + misses), 0.0 before the first lookup."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def clear(self) -> None:
        """Drop every entry (counters are kept)."""
        with self._lock:
            self._data.clear()
