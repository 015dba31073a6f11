"""Search for the facade: validates the request, picks the index and encoder, runs one mode
(dense, lexical, hybrid, two-stage) and hydrates the hits from the catalog."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from embedops.engine.checks import (
    check_k,
    check_mode,
    check_model_match,
    check_modes_inputs,
    check_query,
    check_search_params,
    check_vector,
)
from embedops.engine.indexes import IndexManager
from embedops.engine.models import ModelHub
from embedops.errors import DimensionMismatch, VersionMismatch
from embedops.search.dense import PREFILTER_MAX, dense_search, exact_search
from embedops.search.filters import Filter, compile_filters
from embedops.search.hybrid import FUSION_DEPTH, check_weight, hybrid_fuse
from embedops.search.models import DEFAULT_HYBRID_WEIGHT, Hit, SearchResponse
from embedops.search.twostage import TwoStageConfig, two_stage_search
from embedops.search.view import CollectionView
from embedops.store.catalog import Catalog
from embedops.store.models import CollectionInfo

Pairs = list[tuple[str, float]]


def check_encoder(collection: str, meta: Mapping[str, Any], encoder: Any) -> None:
    """Refuse a query encoder whose dim or tokenizer differs from the index's model version."""
    check_model_match(f"the index of '{collection}'", meta, encoder.version, encoder.dim,
                      encoder.tokenizer_fingerprint,
                      "query with the collection's model version, or rebuild the index with "
                      "this one")


class Searcher:
    """Runs searches over a workspace's collections; keeps one CollectionView per collection."""

    def __init__(self, catalog: Catalog, indexes: IndexManager, hub: ModelHub) -> None:
        self.catalog, self.indexes, self.hub = catalog, indexes, hub
        self._views: dict[str, CollectionView] = {}
        self._infos: dict[str, Any] = {}
        self._infos_generation: int | None = None
        self._lock = threading.Lock()

    def info(self, collection: str) -> CollectionInfo:
        """The catalog's CollectionInfo of ``collection``, kept in memory until the next commit
        to the catalog (by anyone: see ``CatalogWatch``)."""
        generation = self.indexes.watch.generation()
        with self._lock:
            if generation is None or generation != self._infos_generation:
                self._infos, self._infos_generation = {}, generation
            info = self._infos.get(collection)
        if info is None:
            info = self.catalog.get_collection(collection)
            with self._lock:
                if generation is not None and generation == self._infos_generation:
                    self._infos[collection] = info
        return info

    def view(self, collection: str) -> CollectionView:
        """The in-memory view of ``collection`` (lexical + filters), synced with the catalog."""
        generation = self.indexes.watch.generation()
        with self._lock:
            view = self._views.get(collection)
            if view is None:
                view = self._views[collection] = CollectionView(self.catalog, collection)
        view.sync(generation)
        return view

    def forget(self, collection: str) -> None:
        """Drop the cached view and CollectionInfo of ``collection``."""
        with self._lock:
            self._views.pop(collection, None)
            self._infos.pop(collection, None)

    def search(
        self,
        collection: str,
        query: str | None,
        k: int = 10,
        mode: str = "dense",
        filters: Mapping[str, Any] | None = None,
        model_version: str | None = None,
        hybrid_weight: float = DEFAULT_HYBRID_WEIGHT,
        vector: Any = None,
        search_params: Mapping[str, Any] | None = None,
    ) -> SearchResponse:
        """See ``Embedops.search``."""
        started = time.perf_counter()
        k, mode = check_k(k), check_mode(mode)
        check_modes_inputs(mode, query, vector)
        query = None if query is None else check_query(query)
        filt, weight = compile_filters(filters), check_weight(hybrid_weight)
        info = self.info(collection)  # once per search: each look asks the catalog's generation
        version = self._version(collection, model_version, info)
        qvec = None if vector is None else check_vector(vector, info.dim, collection)
        tuning = check_search_params(search_params, mode)
        if mode == "lexical":
            pairs = self.view(collection).lexical(str(query), k, filt)
        elif mode == "dense":
            pairs = self._dense(collection, version, query, k, filt, qvec, tuning)
        elif mode == "hybrid":
            pairs = self._hybrid(collection, version, str(query), k, filt, weight, qvec, tuning)
        else:
            pairs = self._two_stage(collection, version, str(query), k, filt, tuning)
        used = None if mode == "lexical" else version
        hits = self._hydrate(collection, pairs, used)
        took = round((time.perf_counter() - started) * 1000, 3)
        return SearchResponse(hits=hits, model_version=used, mode=mode, took_ms=took)

    def _version(self, collection: str, model_version: str | None,
                 info: CollectionInfo | None = None) -> str:
        info = info if info is not None else self.info(collection)
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

    def _dense(
        self, collection: str, version: str, query: str | None, k: int, filt: Filter,
        qvec: np.ndarray | None = None, tuning: dict[str, Any] | None = None,
    ) -> Pairs:
        served = self.indexes.served(collection, version)
        if qvec is None:
            qvec = self._encode(collection, version, str(query), served.meta)
        elif qvec.size != served.dim:
            raise DimensionMismatch(
                f"the query vector has dim {qvec.size} but the index of '{collection}' "
                f"({version}) has dim {served.dim}",
                "embed the query with that model version (or send the query text)",
            )
        view = self.view(collection) if filt else None
        return dense_search(served, qvec, k, filt, view, self._loader(collection, version),
                            tuning)

    def _hybrid(
        self, collection: str, version: str, query: str, k: int, filt: Filter, weight: float,
        qvec: np.ndarray | None = None, tuning: dict[str, Any] | None = None,
    ) -> Pairs:
        depth = max(FUSION_DEPTH, k)
        dense = (self._dense(collection, version, query, depth, filt, qvec, tuning)
                 if weight > 0 else [])
        lexical = self.view(collection).lexical(query, depth, filt) if weight < 1 else []
        return hybrid_fuse([d for d, _ in dense], [d for d, _ in lexical], weight, k)

    def _two_stage(
        self, collection: str, version: str, query: str, k: int, filt: Filter,
        tuning: dict[str, Any] | None = None,
    ) -> Pairs:
        config = TwoStageConfig.load(self.indexes.workspace.collection_dir(collection))
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
        metric = str(self.info(collection).metric)
        return two_stage_search(first, cheap_q, precise_q, k, config.candidates, loader, metric,
                                accept, tuning)

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
