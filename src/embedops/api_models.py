"""Model access for the facade: cached encoders and static tables, embedding, word queries."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from embedops.errors import InvalidInput, LimitExceeded
from embedops.models.registry import ModelVersion, Registry
from embedops.types import Encoder

MAX_EMBED_BATCH = 10_000
QUERY_CACHE_SIZE = 4096


class ModelHub:
    """Loads each model version once (encoders and static tables), thread-safely."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._lock = threading.Lock()
        self._encoders: dict[str, Encoder] = {}
        self._tables: dict[str, Any] = {}
        self._queries: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()

    def resolve(self, ref: str) -> ModelVersion:
        """The ModelVersion of ``name``, ``name@N`` or ``name@latest``."""
        if not isinstance(ref, str) or not ref:
            raise InvalidInput(f"a model reference must be a non-empty string, got {ref!r}")
        return self.registry.get(ref)

    def encoder(self, ref: str) -> Encoder:
        """The Encoder of ``ref`` (loaded on first use, then cached by exact version)."""
        from embedops.models.loader import load_encoder

        mv = self.resolve(ref)
        with self._lock:
            if mv.ref not in self._encoders:
                self._encoders[mv.ref] = load_encoder(mv, self.registry)
            return self._encoders[mv.ref]

    def table(self, ref: str) -> Any:
        """The StaticVectors table of a static model version (cached)."""
        from embedops.models.static import STATIC_KINDS, StaticVectors

        mv = self.resolve(ref)
        if mv.kind not in STATIC_KINDS:
            raise InvalidInput(
                f"{mv.ref} is a {mv.kind} model; word queries need a static model",
                f"use a model of kind {', '.join(STATIC_KINDS)}",
            )
        with self._lock:
            if mv.ref not in self._tables:
                self._tables[mv.ref] = StaticVectors.read(mv)
            return self._tables[mv.ref]

    def encode_queries(self, texts: Sequence[str], ref: str) -> np.ndarray:
        """Like ``embed``, through an LRU cache of query vectors keyed by (version, text):
        repeated queries (and a batch encoded ahead of single searches) are not encoded again."""
        version = self.resolve(ref).ref
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for text in texts:
                hit = self._queries.get((version, text))
                if hit is not None:
                    self._queries.move_to_end((version, text))
                    found[text] = hit
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            fresh = self.embed(missing, version)
            with self._lock:
                for text, vector in zip(missing, fresh, strict=True):
                    vector.flags.writeable = False
                    self._queries[(version, text)] = found[text] = vector
                while len(self._queries) > QUERY_CACHE_SIZE:
                    self._queries.popitem(last=False)
        if not texts:
            return np.zeros((0, self.resolve(version).dim), dtype=np.float32)
        return np.stack([found[t] for t in texts])

    def embed(self, texts: Sequence[str], ref: str) -> np.ndarray:
        """float32 ``(len(texts), dim)`` vectors of ``texts`` under model ``ref``."""
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise InvalidInput("texts must be a list of strings", 'pass ["one text", ...]')
        if len(texts) > MAX_EMBED_BATCH:
            raise LimitExceeded(
                f"{len(texts)} texts in one call; the limit is {MAX_EMBED_BATCH}",
                "split the input into batches",
            )
        for pos, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidInput(f"text at position {pos} is {type(text).__name__}, not a string")
        if not texts:
            return np.zeros((0, self.encoder(ref).dim), dtype=np.float32)
        return np.asarray(self.encoder(ref).encode(list(texts)), dtype=np.float32)
