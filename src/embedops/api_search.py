"""Search for the facade: validates the request, picks the index and encoder, runs one mode
(dense, lexical, hybrid, two-stage) and hydrates the hits from the catalog."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from embedops.api_index import IndexManager
from embedops.api_models import ModelHub
from embedops.errors import (
    DimensionMismatch,
    FingerprintMismatch,
    InvalidInput,
    LimitExceeded,
    VersionMismatch,
)
from embedops.search.dense import PREFILTER_MAX, check_k, dense_search, exact_search
from embedops.search.filters import Filter, compile_filters
from embedops.search.hybrid import FUSION_DEPTH, check_weight, hybrid_fuse
from embedops.search.models import MODES, Hit, SearchResponse
from embedops.search.twostage import TwoStageConfig, two_stage_search
from embedops.search.view import CollectionView

MAX_QUERY_CHARS = 10_000
Pairs = list[tuple[str, float]]


def check_mode(mode: str) -> str:
    """Validate a search mode (``two-stage`` is accepted for ``two_stage``)."""
    normal = mode.replace("-", "_") if isinstance(mode, str) else mode
    if normal not in MODES:
        raise InvalidInput(f"unknown search mode {mode!r}", f"use one of {', '.join(MODES)}")
    return str(normal)


def check_query(query: str) -> str:
    """Validate a query string: non-empty, at most ``MAX_QUERY_CHARS`` characters."""
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("the query is empty", "pass the text to search for")
    if len(query) > MAX_QUERY_CHARS:
        raise LimitExceeded(
            f"the query has {len(query)} characters; the limit is {MAX_QUERY_CHARS}",
            "shorten the query",
        )
    return query


def check_encoder(collection: str, meta: Mapping[str, Any], encoder: Any) -> None:
    """Refuse a query encoder whose dim or tokenizer differs from the index's model version."""
    built = f"{meta.get('model_version')} (dim {meta.get('dim')})"
    asked = f"{encoder.version} (dim {encoder.dim})"
    if meta.get("dim") is not None and int(meta["dim"]) != int(encoder.dim):
        raise DimensionMismatch(
            f"the index of '{collection}' was built with {built}, the query encoder is {asked}",
            "query with the collection's model version, or rebuild the index with this one",
        )
    fp = meta.get("tokenizer_fingerprint")
    if fp and encoder.tokenizer_fingerprint and fp != encoder.tokenizer_fingerprint:
        raise FingerprintMismatch(
            f"the index of '{collection}' was built with {meta.get('model_version')} "
            f"(tokenizer {fp}), the query encoder is {encoder.version} "
            f"(tokenizer {encoder.tokenizer_fingerprint})",
            "query with the collection's model version, or rebuild the index with this one",
        )


class Searcher:
    """Runs searches over a workspace's collections; keeps one CollectionView per collection."""

    def __init__(self, catalog: Any, indexes: IndexManager, hub: ModelHub) -> None:
        self.catalog, self.indexes, self.hub = catalog, indexes, hub
        self._views: dict[str, CollectionView] = {}
        self._lock = threading.Lock()

    def view(self, collection: str) -> CollectionView:
        """The in-memory view of ``collection`` (lexical + filters), synced with the catalog."""
        with self._lock:
            view = self._views.get(collection)
            if view is None:
                view = self._views[collection] = CollectionView(self.catalog, collection)
        view.sync()
        return view

    def forget(self, collection: str) -> None:
        """Drop the cached view of ``collection``."""
        with self._lock:
            self._views.pop(collection, None)

    def search(
        self,
        collection: str,
        query: str,
        k: int = 10,
        mode: str = "dense",
        filters: Mapping[str, Any] | None = None,
        model_version: str | None = None,
        hybrid_weight: float = 0.5,
    ) -> SearchResponse:
        """See ``Embedops.search``."""
        started = time.perf_counter()
        query, k, mode = check_query(query), check_k(k), check_mode(mode)
        filt, weight = compile_filters(filters), check_weight(hybrid_weight)
        version = self._version(collection, model_version)
        if mode == "lexical":
            pairs = self.view(collection).lexical(query, k, filt)
        elif mode == "dense":
            pairs = self._dense(collection, version, query, k, filt)
        elif mode == "hybrid":
            pairs = self._hybrid(collection, version, query, k, filt, weight)
        else:
            pairs = self._two_stage(collection, version, query, k, filt)
        used = None if mode == "lexical" else version
        hits = self._hydrate(collection, pairs, used)
        took = round((time.perf_counter() - started) * 1000, 3)
        return SearchResponse(hits=hits, model_version=used, mode=mode, took_ms=took)

    def _version(self, collection: str, model_version: str | None) -> str:
        info = self.catalog.get_collection(collection)
        if not model_version:
            return str(info.model_version)
        mv = self.hub.resolve(model_version)
        if mv.ref in (info.model_version, info.candidate_version):
            return mv.ref
        active = self.hub.resolve(info.model_version)
        meta = {"model_version": active.ref, "dim": active.dim,
                "tokenizer_fingerprint": active.tokenizer_fingerprint}
        check_encoder(collection, meta, self.hub.encoder(mv.ref))
        raise VersionMismatch(
            f"collection '{collection}' holds vectors of {info.model_version}"
            + (f" and {info.candidate_version}" if info.candidate_version else "")
            + f", not of {mv.ref}",
            "query with one of those versions, or backfill and index this one first",
        )

    def _encode(self, collection: str, version: str, query: str, meta: Mapping[str, Any]) -> Any:
        check_encoder(collection, meta, self.hub.encoder(version))
        return self.hub.encode_queries([query], version)[0]

    def _loader(self, collection: str, version: str) -> Callable[[Sequence[str]], Any]:
        return lambda ids: self.catalog.load_vectors(collection, version, list(ids))

    def _dense(self, collection: str, version: str, query: str, k: int, filt: Filter) -> Pairs:
        served = self.indexes.served(collection, version)
        qvec = self._encode(collection, version, query, served.meta)
        view = self.view(collection) if filt else None
        return dense_search(served, qvec, k, filt, view, self._loader(collection, version))

    def _hybrid(
        self, collection: str, version: str, query: str, k: int, filt: Filter, weight: float
    ) -> Pairs:
        depth = max(FUSION_DEPTH, k)
        dense = self._dense(collection, version, query, depth, filt) if weight > 0 else []
        lexical = self.view(collection).lexical(query, depth, filt) if weight < 1 else []
        return hybrid_fuse([d for d, _ in dense], [d for d, _ in lexical], weight, k)

    def _two_stage(self, collection: str, version: str, query: str, k: int, filt: Filter) -> Pairs:
        config = TwoStageConfig.load(self.indexes.workspace.indexes_dir / collection)
        cheap = self.hub.resolve(config.cheap_model).ref if config.cheap_model else version
        first = self.indexes.served(collection, cheap)
        precise_meta = first.meta if cheap == version else self._precise_meta(collection, version)
        precise_q = self._encode(collection, version, query, precise_meta)
        cheap_q = precise_q if cheap == version else self._encode(collection, cheap, query,
                                                                  first.meta)
        loader = self._loader(collection, version)
        accept = None
        if filt:
            view = self.view(collection)
            allowed = view.matching(filt)
            if len(allowed) <= PREFILTER_MAX:
                ids, vectors = loader(allowed)
                return exact_search(precise_q, ids, vectors, first.metric, k)
            accept = set(allowed).__contains__
        metric = str(self.catalog.get_collection(collection).metric)
        return two_stage_search(first, cheap_q, precise_q, k, config.candidates, loader, metric,
                                accept)

    def _precise_meta(self, collection: str, version: str) -> dict[str, Any]:
        mv = self.hub.resolve(version)
        return {"model_version": mv.ref, "dim": mv.dim,
                "tokenizer_fingerprint": mv.tokenizer_fingerprint}

    def _hydrate(self, collection: str, pairs: Pairs, version: str | None) -> list[Hit]:
        items = {it.id: it for it in self.catalog.get_items(collection, [p[0] for p in pairs])}
        return [
            Hit(id=i, score=float(s), text=items[i].text, metadata=dict(items[i].metadata),
                model_version=version)
            for i, s in pairs
            if i in items
        ]
