"""``Embedops``: the one typed entry point of a workspace.

    from embedops import Embedops
    eo = Embedops(home="./embedops-data")
    eo.models.import_transformer("minilm")
    eo.collections.create("docs", model="minilm")
    eo.upsert_items("docs", [{"id": "1", "text": "a red fox", "metadata": {"lang": "en"}}])
    eo.build_index("docs", kind="hnsw")
    eo.search("docs", "fox", k=5, mode="hybrid", filters={"lang": "en"})

The CLI, the HTTP server, monitoring and rollouts all call this class and nothing below it.
Every method validates its input and raises an ``EmbedopsError`` subclass (with an HTTP status)
that says what was wrong and what to do. The facade is thread-safe: the server calls it from a
thread pool.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embedops.config import Workspace
from embedops.engine.collections import Collections
from embedops.engine.executors import Executor
from embedops.engine.indexes import IndexManager
from embedops.engine.items import Progress, Writer
from embedops.engine.model_ops import Models
from embedops.engine.models import ModelHub
from embedops.engine.search import Searcher
from embedops.errors import InvalidInput
from embedops.index.snapshot import SnapshotStore
from embedops.models.registry import Registry
from embedops.search.hybrid import FUSION_DEPTH, RRF_K, check_weight
from embedops.search.models import DEFAULT_HYBRID_WEIGHT, SearchResponse
from embedops.search.served import ServedIndex
from embedops.search.twostage import TwoStageConfig
from embedops.store.catalog import Catalog
from embedops.store.models import CollectionInfo, IngestReport, Item


class Embedops:
    """Collections, items, models, indexes and search of one workspace."""

    def __init__(self, workspace: Workspace | None = None, key: bytes | None = None,
                 home: str | os.PathLike[str] | None = None) -> None:
        if workspace is not None and home is not None:
            raise InvalidInput("pass a workspace or a home folder, not both")
        self.workspace = (workspace or Workspace.from_env(home)).ensure()
        self._registry = Registry(self.workspace)
        self._catalog = Catalog(self.workspace, key)
        self._hub = ModelHub(self._registry)
        self._indexes = IndexManager(self.workspace, self._catalog, self._hub)
        self._searcher = Searcher(self._catalog, self._indexes, self._hub)
        self._writer = Writer(self.workspace, self._catalog, self._hub)
        self.models = Models(self._registry, self._hub)
        self.collections = Collections(self.workspace, self._catalog, self._hub,
                                       self.index_status, self._forget)

    def close(self) -> None:
        """Close the catalog's connections."""
        self._indexes.watch.close()
        self._catalog.close()

    def __enter__(self) -> Embedops:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _forget(self, collection: str) -> None:
        self._indexes.forget(collection)
        self._searcher.forget(collection)

    # -- items ---------------------------------------------------------------------------------
    def write_versions(self, collection: str) -> list[str]:
        """The model versions every write to ``collection`` embeds with: active, rollout
        candidate, two-stage cheap model (the one write rule)."""
        return self._writer.versions(collection)

    def upsert_items(self, collection: str, items: Sequence[Any], vectors: Any = None
                     ) -> dict[str, int]:
        """Add or replace items (ItemIn or ``{"id", "text", "metadata"}`` dicts; other top-level
        fields become metadata, as in ``ingest``). Only new or changed items are embedded
        (content hash); they are searchable at once, in every mode. ``vectors`` (one row per
        item, e.g. a numpy array) bring the items' vectors under the active model version,
        computed elsewhere with that model: they are stored as given.
        Returns ``{"received", "written", "unchanged"}``."""
        return self._writer.upsert(collection, items, vectors=vectors)

    def delete_items(self, collection: str, ids: Sequence[str]) -> int:
        """Delete items by id (soft delete); they are never returned again. Returns how many."""
        if isinstance(ids, str) or not all(isinstance(i, str) for i in ids):
            raise InvalidInput("ids must be a list of strings")
        return int(self._catalog.delete(collection, list(ids)))

    def ids_where(self, collection: str, filters: Mapping[str, Any] | None = None) -> list[str]:
        """Ids of the live items whose metadata pass ``filters`` (the same filter language as
        ``search``; None or ``{}``: every live item), in insertion order."""
        from embedops.search.filters import compile_filters

        self._catalog.get_collection(collection)
        return self._searcher.view(collection).matching(compile_filters(filters))

    def delete_where(self, collection: str, filters: Mapping[str, Any]) -> int:
        """Delete the live items whose metadata pass ``filters`` (which must not be empty: use
        ``collections.delete`` to drop everything). Returns how many were deleted."""
        if not filters:
            raise InvalidInput("delete_where needs a filter",
                               "name the items to delete, or delete the collection")
        ids = self.ids_where(collection, filters)
        return sum(self.delete_items(collection, ids[i:i + 10_000])
                   for i in range(0, len(ids), 10_000))

    def ingest(self, collection: str, path: str | Path, executor: Executor | None = None,
               **options: Any) -> IngestReport:
        """Ingest a JSONL/CSV/Parquet/text file: ``id_field``, ``text_field``, ``batch_size``
        (items per transaction), ``fmt``, ``delete_field``, ``delete_missing``, ``text_ids``,
        ``quiet``. Unchanged items are skipped, so a re-run only does what is left; every
        write version is embedded in the same pass. ``executor`` (``engine.executors``, e.g.
        ``RayExecutor("local")``) runs the embedding elsewhere; the writes stay here.
        Returns the IngestReport."""
        return self._writer.ingest(collection, path, executor, **options)

    def backfill(
        self, collection: str, version: str, rate: float | None = None, batch: int = 256,
        on_progress: Progress | None = None, stop: threading.Event | None = None,
        quiet: bool | None = True, executor: Executor | None = None,
    ) -> tuple[int, int]:
        """Embed the items of ``collection`` that lack a ``version`` vector (resumable;
        ``rate`` items/s at most; ``executor`` as for ``ingest``). Returns ``(done, total)``."""
        return self._writer.backfill(collection, version, rate, batch, on_progress, stop,
                                     quiet, executor)

    def get_items(self, collection: str, ids: Sequence[str]) -> list[Item]:
        """The live items with these ids (unknown or deleted ids are left out)."""
        if isinstance(ids, str):
            raise InvalidInput("ids must be a list of strings", 'pass ["id1", ...]')
        return list(self._catalog.get_items(collection, list(ids)))

    def iter_items(self, collection: str) -> Iterator[Item]:
        """Every live item, in insertion order."""
        return iter(self._catalog.iter_items(collection))

    def peek(self, collection: str, n: int = 10) -> list[Item]:
        """The first ``n`` live items."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InvalidInput(f"n must be a non-negative integer, got {n!r}")
        out: list[Item] = []
        for item in self._catalog.iter_items(collection):
            if len(out) >= n:
                break
            out.append(item)
        return out

    def count(self, collection: str) -> int:
        """How many live items ``collection`` holds."""
        return int(self._catalog.get_collection(collection).item_count)

    def item_ids(self, collection: str) -> list[str]:
        """Ids of every live item."""
        return list(self._catalog.all_ids(collection))

    def load_vectors(self, collection: str, version: str,
                     ids: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
        """``(ids, vectors)`` stored for ``version`` (of ``ids``, else of every live item)."""
        found, vectors = self._catalog.load_vectors(
            collection, self._hub.resolve(version).ref, None if ids is None else list(ids))
        return list(found), vectors

    def missing_vectors(self, collection: str, version: str) -> list[str]:
        """Ids of live items without a ``version`` vector."""
        return list(self._catalog.missing_vectors(collection, self._hub.resolve(version).ref))

    def changes_since(self, collection: str, ts: float) -> list[tuple[str, float, bool]]:
        """``(id, updated_at, deleted)`` of items written after ``ts``."""
        return list(self._catalog.changes_since(collection, ts))

    # -- encryption of derived data -------------------------------------------------------
    def seal(self, collection: str, data: bytes, context: str) -> bytes | None:
        """``data`` encrypted with ``collection``'s key (AES-GCM, bound to the collection and
        ``context``) when the collection is encrypted, else None (store it plain): for what the
        loop keeps about a collection outside the catalog (golden queries, samples)."""
        cipher = self._catalog.cipher(collection)
        return None if cipher is None else cipher.encrypt(data, _derived_aad(collection, context))

    def unseal(self, collection: str, blob: bytes, context: str) -> bytes:
        """The plain bytes of a ``seal`` of ``collection`` with ``context``; EncryptionKeyError
        when the key is missing or wrong, or the bytes were altered."""
        cipher = self._catalog.cipher(collection)
        if cipher is None:
            from embedops.errors import IntegrityError

            raise IntegrityError(
                f"encrypted {context} data is stored for collection '{collection}', which is "
                "not encrypted (it was deleted and created again without encryption?)",
                "delete and re-add that data",
            )
        return cipher.decrypt(blob, _derived_aad(collection, context),
                              f"the stored {context} data of collection '{collection}'")

    # -- versions (rollouts) -------------------------------------------------------------------
    def set_candidate(self, collection: str, model: str | None) -> CollectionInfo:
        """Make ``model`` the rollout candidate of ``collection`` (None: no candidate); every
        write embeds for it from now on."""
        ref = self._hub.resolve(model).ref if model else None
        info = self._catalog.set_candidate_version(collection, ref)
        self._searcher.forget(collection)
        return info

    def switch_versions(self, collection: str, active: str, candidate: str | None
                        ) -> CollectionInfo:
        """Set active and candidate versions in one transaction (promote, roll back)."""
        info = self._catalog.switch_versions(collection, active, candidate)
        self._searcher.forget(collection)
        return info

    # -- indexes -------------------------------------------------------------------------------
    def build_index(
        self, collection: str, kind: str = "flat", params: dict[str, Any] | None = None,
        model_version: str | None = None, quiet: bool | None = None,
    ) -> dict[str, Any]:
        """Build an index (flat, hnsw, ivf, ivfpq, sq8) from the catalog, publish it as a
        checksummed snapshot and serve it. Returns the snapshot summary."""
        return self._indexes.build(collection, kind, params, model_version, quiet)

    def index_status(self, collection: str, model_version: str | None = None,
                     load: bool = False) -> dict[str, Any]:
        """Current snapshot, item count and freshness (items not in the served snapshot);
        ``served`` (counts, memory) when this process serves the index, or with ``load`` (which
        loads and verifies it first, as a search would)."""
        if load and self.snapshots(collection, model_version).list():
            self.served_index(collection, model_version)
        return self._indexes.status(collection, model_version)

    def verify_index(self, collection: str, model_version: str | None = None) -> Any:
        """Verify the checksums of the collection's snapshots, and compare the served index
        with the catalog (a check named ``catalog``)."""
        return self._indexes.verify(collection, model_version)

    def check_index(self, collection: str, model_version: str | None = None,
                    repair: bool = False) -> dict[str, Any] | None:
        """Compare the collection's index with the catalog now (count and checksum of its
        items, see ``engine.consistency``); ``repair`` rebuilds an index that diverges. The
        result is what ``index_status`` reports as ``consistency``; None when there is no
        index yet."""
        found = self._indexes.check(collection, model_version, repair)
        return None if found is None else found.to_dict()

    def rollback_index(self, collection: str, model_version: str | None = None) -> dict[str, Any]:
        """Serve the previous snapshot of the collection's index again."""
        return self._indexes.rollback(collection, model_version)

    def refresh_index(self, collection: str, model_version: str | None = None,
                      max_segments: int = 10, merge_rate: float | None = None
                      ) -> dict[str, Any]:
        """Index the items written since the served snapshot as a new segment (built from
        those items only; the unchanged segments are hard-linked) and publish it; past
        ``max_segments`` segments the small ones are merged. A cell index (ivf, ivfpq,
        rabitq) instead folds them into a copy of its newest segment while that one stays
        within twice its cells' training size (``folded``). ``merge_rate``: at most this
        many vectors a second are added to the segments built (0: unlimited; default
        ``$EMBEDOPS_MERGE_RATE``), so serving keeps the cores. ``changed`` False: nothing new."""
        return self._indexes.refresh(collection, model_version, max_segments, merge_rate)

    def merge_index(self, collection: str, model_version: str | None = None,
                    merge_rate: float | None = None) -> dict[str, Any]:
        """Merge the segments of the collection's index (and recent writes) into one segment,
        dropping deleted and rewritten entries (the largest hnsw segment, when it has none, is
        copied and the rest inserted into the copy: ``reused`` in the summary); ``merge_rate``
        as for ``refresh_index``."""
        return self._indexes.merge(collection, model_version, merge_rate)

    def index_version(self, collection: str, model_version: str | None = None) -> str:
        """``model_version`` as ``name@N``; default the collection's active version."""
        return self._indexes.version(collection, model_version)

    def index_problems(self) -> dict[str, str]:
        """``{"collection/version": what is wrong}`` for served indexes whose external backend
        (Milvus) does not answer; empty when every served index can answer."""
        return self._indexes.problems()

    def index_loaded(self, collection: str, model_version: str) -> bool:
        """True when that index is in memory already (a search will not load it)."""
        return self._indexes.is_loaded(collection, model_version)

    def served_index(self, collection: str, model_version: str | None = None) -> ServedIndex:
        """The in-memory index of ``collection`` for ``model_version`` (loaded, verified and
        synced with the catalog first)."""
        return self._indexes.served(collection, self.index_version(collection, model_version))

    def snapshots(self, collection: str, model_version: str | None = None) -> SnapshotStore:
        """The snapshot store of ``collection``'s index for ``model_version``."""
        return self._indexes.store(collection, self.index_version(collection, model_version))

    def configure_two_stage(
        self, collection: str, cheap_model: str | None = None, candidates: int = 100
    ) -> TwoStageConfig:
        """Set the first stage of two-stage search: a cheap model version (its vectors are
        backfilled now and written with every upsert and ingest) or None for the collection's
        own index."""
        self._catalog.get_collection(collection)
        ref = self._hub.resolve(cheap_model).ref if cheap_model else None
        config = TwoStageConfig(cheap_model=ref, candidates=candidates)
        folder = self.workspace.collection_dir(collection)
        folder.mkdir(parents=True, exist_ok=True)
        # Saved before the backfill: writes that land while it runs embed the cheap model too.
        config.save(folder)
        if ref:
            self._writer.backfill(collection, ref)
        return config

    def two_stage_config(self, collection: str) -> TwoStageConfig:
        """The two-stage settings of ``collection``."""
        return self._writer.two_stage(collection)

    # -- search --------------------------------------------------------------------------------
    def collection_info(self, collection: str) -> CollectionInfo:
        """CollectionInfo of ``collection``, cached until the next commit to the catalog."""
        return self._searcher.info(collection)

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
        return self._searcher.search(collection, query, k, mode, filters, model_version,
                                     hybrid_weight, vector, search_params)

    def search_vector(self, collection: str, version: str, vector: np.ndarray, k: int
                      ) -> list[tuple[str, float]]:
        """Raw ``(id, score)`` pairs of one query vector against ``version``'s index of
        ``collection`` (no filters, no hydration): for callers that map vectors themselves."""
        return list(self._indexes.served(collection, version).search(vector, k))

    def explain_hybrid(
        self, collection: str, query: str, k: int = 10,
        filters: Mapping[str, Any] | None = None, model_version: str | None = None,
        hybrid_weight: float = DEFAULT_HYBRID_WEIGHT,
        search_params: Mapping[str, Any] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Why ``search(mode="hybrid")`` ranks each item where it does, keyed by item id.

        Hybrid search fuses the top ``max(100, k)`` of a dense and a lexical search with
        weighted reciprocal rank fusion. For every item of either list this returns its
        ``dense_rank`` and ``dense_score`` (cosine or the collection's metric), its
        ``lexical_rank`` and ``lexical_score`` (BM25), the share each list adds to the fused
        score (``dense_part`` = ``hybrid_weight / (60 + dense_rank)``, ``lexical_part`` with
        ``1 - hybrid_weight``), the ``fused_score`` and the ``fused_rank`` (ranks from 1; None
        where a list misses the item or ``hybrid_weight`` leaves a list out). The arguments
        are those of ``search``, validated the same way."""
        weight = check_weight(hybrid_weight)
        depth = max(FUSION_DEPTH, k)
        lists: dict[str, list[tuple[str, float]]] = {"dense": [], "lexical": []}
        if weight > 0:
            dense = self.search(collection, query, depth, "dense", filters, model_version,
                                weight, None, search_params)
            lists["dense"] = [(h.id, h.score) for h in dense.hits]
        if weight < 1:
            lexical = self.search(collection, query, depth, "lexical", filters)
            lists["lexical"] = [(h.id, h.score) for h in lexical.hits]
        shares = {"dense": weight, "lexical": 1.0 - weight}
        out: dict[str, dict[str, Any]] = {}
        for name, pairs in lists.items():
            for rank, (item, score) in enumerate(pairs, start=1):
                row = out.setdefault(item, {
                    "dense_rank": None, "dense_score": None, "dense_part": 0.0,
                    "lexical_rank": None, "lexical_score": None, "lexical_part": 0.0})
                row[f"{name}_rank"], row[f"{name}_score"] = rank, float(score)
                row[f"{name}_part"] = shares[name] / (RRF_K + rank)
        best = {i: min(r for r in (row["dense_rank"], row["lexical_rank"]) if r is not None)
                for i, row in out.items()}
        for row in out.values():
            row["fused_score"] = row["dense_part"] + row["lexical_part"]
        order = sorted(out, key=lambda i: (-out[i]["fused_score"], best[i], i))
        for rank, item in enumerate(order, start=1):
            out[item]["fused_rank"] = rank
        return out

    # -- models --------------------------------------------------------------------------------
    def default_model(self) -> str:
        """The model used when none is named: the only model in the registry."""
        return self.models.default()

    def embed(self, texts: Sequence[str], model: str | None = None) -> np.ndarray:
        """float32 ``(len(texts), dim)`` embeddings of ``texts`` under ``model``."""
        return self._hub.embed(texts, model or self.default_model())

    def neighbours(self, model: str, word: str, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` nearest words of ``word`` in a static model, best first."""
        return list(self._hub.table(model).most_similar(word, k))

    def similarity(self, model: str, a: str, b: str) -> float:
        """Cosine similarity of two words in a static model."""
        return float(self._hub.table(model).similarity(a, b))

    def analogy(
        self, model: str, a: str, b: str, c: str, k: int = 1, method: str = "3cosadd"
    ) -> list[tuple[str, float]]:
        """``a : b :: c : ?`` in a static model (inputs excluded), best first."""
        return list(self._hub.table(model).analogy(a, b, c, k, method))


def _derived_aad(collection: str, context: str) -> bytes:
    return f"embedops-derived\x00{collection}\x00{context}".encode()
