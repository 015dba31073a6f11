"""Model access for the facade: cached encoders and static tables, embedding, word queries."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from embedops.engine.checks import check_texts
from embedops.errors import InvalidInput
from embedops.models.registry import MANIFEST, ModelVersion, Registry
from embedops.types import Encoder

QUERY_CACHE_SIZE = 4096


EncoderWrapper = Callable[[Encoder], Encoder]


def _stamp(path: os.PathLike[str] | str) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size, st.st_nlink


class ModelHub:
    """Loads each model version once (encoders and static tables), thread-safely."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._lock = threading.Lock()
        self._encoders: dict[str, Encoder] = {}
        self._wrapped: dict[str, Encoder] = {}
        self._wrapper: EncoderWrapper | None = None
        self._tables: dict[str, Any] = {}
        self._queries: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._resolved: dict[str, tuple[ModelVersion, tuple[str, str], tuple[Any, ...]]] = {}

    def resolve(self, ref: str) -> ModelVersion:
        """The ModelVersion of ``name``, ``name@N`` or ``name@latest``.

        Answers are cached and re-read only when the model's folder or the version's manifest
        changes on disk (a stat each), since reading manifests was a large share of a search."""
        if not isinstance(ref, str) or not ref:
            raise InvalidInput(f"a model reference must be a non-empty string, got {ref!r}")
        cached = self._resolved.get(ref)
        if cached is not None and (_stamp(cached[1][0]), _stamp(cached[1][1])) == cached[2]:
            return cached[0]
        mv = self.registry.get(ref)
        # The folder's stamp changes when a version is added or deleted (so ``name@latest``
        # moves on); the manifest is replaced atomically (new inode) when it is rewritten.
        paths = (str(mv.path.parent), str(mv.path / MANIFEST))
        self._resolved[ref] = (mv, paths, (_stamp(paths[0]), _stamp(paths[1])))
        return mv

    def wrap_encoders(self, wrapper: EncoderWrapper | None) -> None:
        """Hand out ``wrapper(encoder)`` instead of each loaded encoder (one wrapper object per
        model version, made on first use); ``None`` removes the wrapper. The server's query
        cache hooks in here."""
        with self._lock:
            self._wrapper = wrapper
            self._wrapped.clear()

    def encoder(self, ref: str) -> Encoder:
        """The Encoder of ``ref`` (loaded on first use, then cached by exact version), wrapped
        by the ``wrap_encoders`` hook when one is set."""
        from embedops.models.loader import load_encoder

        mv = self.resolve(ref)
        with self._lock:
            if mv.ref not in self._encoders:
                self._encoders[mv.ref] = load_encoder(mv, self.registry)
            if self._wrapper is None:
                return self._encoders[mv.ref]
            if mv.ref not in self._wrapped:
                self._wrapped[mv.ref] = self._wrapper(self._encoders[mv.ref])
            return self._wrapped[mv.ref]

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
        repeated queries (and a batch encoded ahead of single searches) are not encoded again.
        With a ``wrap_encoders`` hook installed (the server's query cache, which is bounded by
        its own setting and counted in its metrics) that cache is the only one."""
        if self._wrapper is not None:
            return self._embed_queries(texts, ref)
        mv = self.resolve(ref)
        version = mv.ref
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for text in texts:
                hit = self._queries.get((version, text))
                if hit is not None:
                    self._queries.move_to_end((version, text))
                    found[text] = hit
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            fresh = self._embed_queries(missing, version)
            with self._lock:
                for text, vector in zip(missing, fresh, strict=True):
                    vector.flags.writeable = False
                    self._queries[(version, text)] = found[text] = vector
                while len(self._queries) > QUERY_CACHE_SIZE:
                    self._queries.popitem(last=False)
        if not texts:
            return np.zeros((0, mv.dim), dtype=np.float32)
        return np.stack([found[t] for t in texts])

    def _embed_queries(self, texts: Sequence[str], ref: str) -> np.ndarray:
        """Query vectors: through the encoder's ``encode_queries`` where it has one (a model
        with a query prompt, such as e5's ``query: ``), else like documents."""
        encoder = self.encoder(ref)
        encode = getattr(encoder, "encode_queries", None)
        if encode is None:
            return self.embed(texts, ref)
        texts = check_texts(texts)
        if not texts:
            return np.zeros((0, encoder.dim), dtype=np.float32)
        return np.asarray(encode(texts), dtype=np.float32)

    def embed(self, texts: Sequence[str], ref: str) -> np.ndarray:
        """float32 ``(len(texts), dim)`` vectors of ``texts`` under model ``ref``."""
        texts = check_texts(texts)
        if not texts:
            return np.zeros((0, self.encoder(ref).dim), dtype=np.float32)
        return np.asarray(self.encoder(ref).encode(texts), dtype=np.float32)
