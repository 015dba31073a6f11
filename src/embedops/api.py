"""The Python API of embedops: one facade that the CLI and the HTTP server both call.

    from embedops.api import Embedops
    eo = Embedops()                                   # workspace from $EMBEDOPS_HOME
    eo.collections.create("docs", model="minilm")
    eo.upsert_items("docs", [{"id": "1", "text": "a red fox", "metadata": {"lang": "en"}}])
    eo.build_index("docs", kind="hnsw")
    eo.search("docs", "fox", k=5, mode="hybrid", filters={"lang": "en"})

Every method validates its input and raises an ``EmbedopsError`` subclass (with an HTTP status)
that says what was wrong and what to do. The facade is thread-safe: the server calls it from a
thread pool.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embedops.api_index import IndexManager
from embedops.api_models import ModelHub
from embedops.api_search import Searcher
from embedops.config import Workspace
from embedops.errors import InvalidInput, LimitExceeded, ModelNotFound
from embedops.models.registry import Registry
from embedops.search.hybrid import DEFAULT_HYBRID_WEIGHT
from embedops.search.models import SearchResponse
from embedops.search.twostage import TwoStageConfig

MAX_UPSERT_BATCH = 10_000


def as_items(items: Sequence[Any]) -> list[Any]:
    """``ItemIn`` objects from ItemIn or ``{"id", "text", "metadata"}`` dicts (validated)."""
    from embedops.store.models import ItemIn

    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Sequence):
        raise InvalidInput("items must be a list of {id, text, metadata} objects")
    if len(items) > MAX_UPSERT_BATCH:
        raise LimitExceeded(
            f"{len(items)} items in one call; the limit is {MAX_UPSERT_BATCH}",
            "send them in batches, or use ingest for files",
        )
    out = []
    for pos, item in enumerate(items):
        if isinstance(item, ItemIn):
            out.append(item)
        elif isinstance(item, Mapping) and set(item) <= {"id", "text", "metadata"}:
            out.append(ItemIn(id=item.get("id"), text=item.get("text"),  # type: ignore[arg-type]
                              metadata=item.get("metadata") or {}))
        else:
            raise InvalidInput(
                f"item at position {pos} is not an object with id, text and metadata",
                'write {"id": "1", "text": "...", "metadata": {}}',
            )
    seen: set[str] = set()
    dups = [it.id for it in out if it.id in seen or seen.add(it.id)]  # type: ignore[func-returns-value]
    if dups:
        raise InvalidInput(f"duplicate item ids in one call: {dups[:5]}", "send each id once")
    return out


class Collections:
    """``create``, ``list``, ``show`` and ``delete`` of collections (see ``Embedops``)."""

    def __init__(self, api: Embedops) -> None:
        self._api = api

    def create(
        self, name: str, model: str, metric: str = "cosine", encrypted: bool = False
    ) -> Any:
        """Create collection ``name`` embedded with ``model`` (``name``/``name@N``); returns
        its CollectionInfo. The model's dimension is taken from its manifest."""
        mv = self._api.models.resolve(model)
        return self._api.catalog.create_collection(
            name, model_version=mv.ref, metric=metric, dim=mv.dim, encrypted=encrypted
        )

    def list(self) -> list[Any]:
        """Every collection (CollectionInfo), by name."""
        return list(self._api.catalog.list_collections())

    def show(self, name: str) -> dict[str, Any]:
        """Counts, vectors per version, last ingest runs and index status of ``name``."""
        return {**self._api.catalog.stats(name), "index": self._api.index_status(name)}

    def delete(self, name: str) -> Any:
        """Delete collection ``name``, its items, vectors and index snapshots."""
        info = self._api.catalog.delete_collection(name)
        self._api.indexes.forget(name)
        self._api.searcher.forget(name)
        shutil.rmtree(self._api.workspace.indexes_dir / name, ignore_errors=True)
        return info


class Embedops:
    """The facade over catalog, models, indexes and search of one workspace."""

    def __init__(self, workspace: Workspace | None = None, key: bytes | None = None) -> None:
        from embedops.store.catalog import Catalog

        self.workspace = (workspace or Workspace.from_env()).ensure()
        self.registry = Registry(self.workspace)
        self.catalog = Catalog(self.workspace, key)
        self.models = ModelHub(self.registry)
        self.indexes = IndexManager(self.workspace, self.catalog, self.models)
        self.searcher = Searcher(self.catalog, self.indexes, self.models)
        self.collections = Collections(self)

    def close(self) -> None:
        """Close the catalog's connections."""
        self.indexes.watch.close()
        self.catalog.close()

    def __enter__(self) -> Embedops:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- items ---------------------------------------------------------------------------------
    def _versions(self, collection: str) -> list[str]:
        """Model versions every write must embed with: active, rollout candidate, cheap stage."""
        info = self.catalog.get_collection(collection)
        cheap = TwoStageConfig.load(self.workspace.indexes_dir / collection).cheap_model
        refs = [info.model_version, info.candidate_version]
        if cheap:
            refs.append(self.models.resolve(cheap).ref)
        return list(dict.fromkeys(r for r in refs if r))

    def upsert_items(self, collection: str, items: Sequence[Any]) -> dict[str, int]:
        """Add or replace items (ItemIn or ``{"id","text","metadata"}``). Only new or changed
        items are embedded (content hash); they are searchable at once, in every mode.
        Returns ``{"received", "written", "unchanged"}``."""
        batch = as_items(items)
        changed = self.catalog.plan_upsert(collection, batch)
        if changed:
            texts = [it.text for it in changed]
            vectors = {v: self.models.embed(texts, v) for v in self._versions(collection)}
            self.catalog.upsert(collection, changed, vectors, source="api")
        return {"received": len(batch), "written": len(changed),
                "unchanged": len(batch) - len(changed)}

    def delete_items(self, collection: str, ids: Sequence[str]) -> int:
        """Delete items by id (soft delete); they are never returned again. Returns how many."""
        if isinstance(ids, str) or not all(isinstance(i, str) for i in ids):
            raise InvalidInput("ids must be a list of strings")
        return int(self.catalog.delete(collection, list(ids)))

    def ingest(self, collection: str, path: str | Path, **options: Any) -> Any:
        """Ingest a JSONL/CSV/Parquet file (see ``embedops.store.ingest.ingest`` for options:
        ``id_field``, ``text_field``, ``batch_size``, ``quiet``). Returns the IngestReport.
        Vectors of the other versions every write needs (rollout candidate, two-stage cheap
        model) are backfilled afterwards."""
        from embedops.store.ingest import ingest

        versions = self._versions(collection)
        report = ingest(self.catalog, collection, Path(path), self.models.encoder(versions[0]),
                        **options)
        for version in versions[1:]:
            self._backfill(collection, version)
        return report

    # -- indexes -------------------------------------------------------------------------------
    def build_index(
        self,
        collection: str,
        kind: str = "flat",
        params: dict[str, Any] | None = None,
        model_version: str | None = None,
        quiet: bool | None = None,
    ) -> dict[str, Any]:
        """Build an index (flat, hnsw, ivf, ivfpq, sq8) from the catalog, publish it as a
        checksummed snapshot and serve it. Returns the snapshot summary."""
        return self.indexes.build(collection, kind, params, model_version, quiet)

    def index_status(self, collection: str, model_version: str | None = None) -> dict[str, Any]:
        """Current snapshot, item count and freshness (items not in the served snapshot)."""
        return self.indexes.status(collection, model_version)

    def verify_index(self, collection: str, model_version: str | None = None) -> Any:
        """Verify the checksums of the collection's snapshots."""
        return self.indexes.verify(collection, model_version)

    def rollback_index(self, collection: str, model_version: str | None = None) -> dict[str, Any]:
        """Serve the previous snapshot of the collection's index again."""
        return self.indexes.rollback(collection, model_version)

    def configure_two_stage(
        self, collection: str, cheap_model: str | None = None, candidates: int = 100
    ) -> TwoStageConfig:
        """Set the first stage of two-stage search: a cheap model version (its vectors are
        backfilled now and written with every upsert) or None for the collection's own index."""
        self.catalog.get_collection(collection)
        ref = self.models.resolve(cheap_model).ref if cheap_model else None
        config = TwoStageConfig(cheap_model=ref, candidates=candidates)
        if ref:
            self._backfill(collection, ref)
        folder = self.workspace.indexes_dir / collection
        folder.mkdir(parents=True, exist_ok=True)
        config.save(folder)
        return config

    def _backfill(self, collection: str, ref: str, batch: int = 512) -> int:
        missing = self.catalog.missing_vectors(collection, ref)
        for start in range(0, len(missing), batch):
            items = self.catalog.get_items(collection, missing[start:start + batch])
            vectors = self.models.embed([it.text for it in items], ref)
            self.catalog.put_vectors(collection, ref, [it.id for it in items], vectors)
        return len(missing)

    # -- search --------------------------------------------------------------------------------
    def search(
        self,
        collection: str,
        query: str | None = None,
        k: int = 10,
        mode: str = "dense",
        filters: Mapping[str, Any] | None = None,
        model_version: str | None = None,
        hybrid_weight: float = DEFAULT_HYBRID_WEIGHT,
        vector: Any = None,
        search_params: Mapping[str, Any] | None = None,
    ) -> SearchResponse:
        """Search ``collection`` for ``query``; ``mode`` is dense, lexical, hybrid (RRF of both,
        ``hybrid_weight`` = dense share) or two_stage (cheap recall, exact rerank). ``filters``
        test metadata: ``{"f": v}``, ``{"f": {"in": [...]}}``, ``{"f": {"gte": a, "lte": b}}``.
        ``k`` is 1..1000. ``model_version`` defaults to the collection's active version (the
        rollout candidate may be named); any other version is refused. ``vector`` (a query
        embedding of the collection's dimension, e.g. a numpy array) replaces ``query`` in dense
        mode and the dense half of hybrid mode, so the query is not encoded.
        ``search_params`` tune the vector index for this query only: ``ef_search`` (hnsw),
        ``nprobe`` (ivf, ivfpq), ``rescore_factor`` (ivfpq, sq8), e.g. ``{"ef_search": 128}``
        for more recall at some speed; a knob the collection's index lacks is an InvalidInput."""
        return self.searcher.search(collection, query, k, mode, filters, model_version,
                                    hybrid_weight, vector, search_params)

    # -- models --------------------------------------------------------------------------------
    def default_model(self) -> str:
        """The model used when none is named: the only model in the registry."""
        names = self.registry.names()
        if len(names) != 1:
            raise ModelNotFound(
                f"no model named and the registry holds {len(names)} "
                f"({', '.join(names) or 'none'})",
                "name the model to use",
            )
        return names[0]

    def embed(self, texts: Sequence[str], model: str | None = None) -> np.ndarray:
        """float32 ``(len(texts), dim)`` embeddings of ``texts`` under ``model``."""
        return self.models.embed(texts, model or self.default_model())

    def neighbours(self, model: str, word: str, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` nearest words of ``word`` in a static model, best first."""
        return list(self.models.table(model).most_similar(word, k))

    def similarity(self, model: str, a: str, b: str) -> float:
        """Cosine similarity of two words in a static model."""
        return float(self.models.table(model).similarity(a, b))

    def analogy(
        self, model: str, a: str, b: str, c: str, k: int = 1, method: str = "3cosadd"
    ) -> list[tuple[str, float]]:
        """``a : b :: c : ?`` in a static model (inputs excluded), best first."""
        return list(self.models.table(model).analogy(a, b, c, k, method))
