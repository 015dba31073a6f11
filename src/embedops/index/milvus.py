"""The ``milvus`` index backend: the ``Index`` contract over a Milvus collection.

Vectors live in Milvus (a remote cluster, or milvus-lite in process for a laptop and the tests;
see :mod:`~embedops.index.milvus_client` for the URI, the token and failures); embedops keeps
its snapshot semantics as thin pointers:

* ``build`` writes a **new** Milvus collection (``<prefix>_<UTC stamp>_<random>``), then checks
  its row count and a sample of its vectors against what it was given (the catalog's vectors,
  when the engine builds); a build that fails drops its collection and leaves the index as it
  was.
* ``save(folder)`` writes only ``index.json``: kind, dim, metric, params and the collection's
  name, count and the sha256 of a sample of its vectors. The snapshot store checksums and seals
  that file like any other, so ``CURRENT`` and the manifests keep their meaning. A snapshot owns
  its collection: an index is *frozen* once saved or loaded, and its next write (or save) first
  copies the collection, so a published snapshot never changes.
* ``load(folder)`` reconnects and verifies that the collection exists and holds the recorded
  count and sample; a missing or altered collection is an ``IntegrityError`` (the snapshot is
  quarantined, never served). An unreachable Milvus is ``Unavailable`` instead (nothing is
  quarantined; the caller answers 503 and tries again later).
* ``activate_saved`` points a Milvus **alias** (one per embedops collection and model version,
  see ``milvus_params.alias_name``) at a saved index's collection: the snapshot store calls it
  before it swaps ``CURRENT`` on publish and rollback, so other Milvus readers follow the
  served snapshot, and a failed build never moves it. ``release_saved`` drops the collection
  of a pruned snapshot.

Cosine vectors are stored l2-normalized and searched by inner product; ``l2`` scores are minus
Milvus's squared distances. Items may carry metadata (``build(..., metadata=)``), stored in the
typed layout of :mod:`~embedops.index.milvus_filters`, and ``search(..., filters=)`` then filters
inside Milvus. Searches return at most ``MAX_TOPK`` results a query (Milvus's limit).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from embedops.errors import AlreadyExists, EmbedopsError, IntegrityError, InvalidInput
from embedops.index.checks import (
    check_ids,
    check_k,
    check_metric,
    check_queries,
    check_search_knobs,
    check_unique,
    check_vectors,
)
from embedops.index.files import write_meta
from embedops.index.milvus_client import Connection, connection
from embedops.index.milvus_filters import FIELD, Filter, encode_metadata, to_expr
from embedops.index.milvus_params import MilvusParams, activate, release
from embedops.index.protocol import F32, IdArray, Index
from embedops.index.scoring import pad

MAX_TOPK = 16_384
_BATCH = 2_000


class MilvusIndex:
    """An ANN index held by Milvus (see the module docstring)."""

    kind: ClassVar[str] = "milvus"
    params_cls: ClassVar[type] = MilvusParams

    def __init__(self, dim: int, metric: str = "cosine", params: Any = None) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or int(dim) <= 0:
            raise InvalidInput(f"index dimension must be a positive integer, got {dim!r}")
        self.dim = int(dim)
        self.metric = check_metric(metric)
        self.params: MilvusParams = params if params is not None else MilvusParams()
        self.collection: str | None = None
        self._count = 0
        self._ids: IdArray | None = None  # known live ids (None: ask Milvus when needed)
        self._frozen = False  # saved or loaded: the next write copies the collection first

    # --- the contract -------------------------------------------------------------------------
    @property
    def count(self) -> int:
        """Number of live (searchable) vectors."""
        return self._count

    @property
    def search_knobs(self) -> Mapping[str, tuple[int, int]]:
        """``ef_search`` for HNSW; FLAT has no knob."""
        return {"ef_search": (1, 1 << 15)} if self.params.index_type == "HNSW" else {}

    def ids(self) -> IdArray:
        """The live ids (a copy; read from Milvus unless this index wrote them)."""
        if self._ids is None:
            if self.collection is None:
                return np.empty(0, np.int64)
            found = [int(row["id"]) for row in self._scan(["id"])]
            self._ids = np.sort(np.asarray(found, dtype=np.int64))
        return self._ids.copy()

    def build(self, vectors: np.ndarray, ids: np.ndarray,
              metadata: Sequence[Mapping[str, Any] | None] | None = None) -> None:
        """Write ``vectors`` under ``ids`` into a new collection (verified: count and a
        sample), then serve it; ``metadata[i]`` of row ``i`` makes ``filters`` work."""
        vecs, ids64 = self._prepare(vectors, ids)
        _check_metadata(metadata, len(ids64))
        name = self._create()
        try:
            self._insert(name, vecs, ids64, metadata)
            self._conn().call("flush", lambda c: c.flush(name, timeout=self._timeout), name)
            self._verify_build(name, vecs, ids64)
        except BaseException:
            self._drop(name)
            raise
        # the replaced collection is this index's own unless a snapshot holds it (frozen)
        old = None if self._frozen else self.collection
        self.collection, self._count, self._frozen = name, len(ids64), False
        self._ids = np.sort(ids64)
        if old is not None:
            self._drop(old)

    def add(self, vectors: np.ndarray, ids: np.ndarray,
            metadata: Sequence[Mapping[str, Any] | None] | None = None) -> None:
        """Add new vectors; an id already present is refused (use ``upsert``)."""
        vecs, ids64 = self._prepare(vectors, ids)
        _check_metadata(metadata, len(ids64))
        clash = self._present(ids64)
        if len(clash):
            raise AlreadyExists(f"{len(clash)} id(s) already in the index: {clash[:5].tolist()}",
                                "use upsert() to replace them, or remove() them first")
        if len(ids64):
            self._insert(self._writable(), vecs, ids64, metadata)
            self._learn(added=ids64)

    def upsert(self, vectors: np.ndarray, ids: np.ndarray,
               metadata: Sequence[Mapping[str, Any] | None] | None = None) -> None:
        """Add vectors, replacing those whose id is already present."""
        vecs, ids64 = self._prepare(vectors, ids)
        _check_metadata(metadata, len(ids64))
        if not len(ids64):
            return
        present = self._present(ids64)
        self._send("upsert", self._writable(), _rows(vecs, ids64, metadata))
        self._learn(added=np.setdiff1d(ids64, present))

    def remove(self, ids: np.ndarray | list[int]) -> int:
        """Remove ids (unknown ones are ignored); returns how many were removed."""
        present = self._present(np.unique(check_ids(ids, None)))
        if not len(present):
            return 0
        name = self._writable()
        self._conn().call("delete", lambda c: c.delete(name, ids=present.tolist(),
                                                        timeout=self._timeout), name)
        self._learn(removed=present)
        return int(len(present))

    def search(self, queries: np.ndarray, k: int, search_params: dict[str, Any] | None = None,
               filters: Filter | None = None) -> tuple[IdArray, F32]:
        """The ``k`` best (ids, scores) of each query row, padded with ``-1`` / ``-inf``;
        ``filters`` (an ``embedops.search.filters.Filter``) is applied inside Milvus."""
        tuning = self.check_search_params(search_params)
        q, scale = check_queries(queries, self.dim, self.metric)
        k = check_k(k)
        limit = min(k, self._count, MAX_TOPK)
        name = self.collection
        if name is None or limit == 0 or len(q) == 0:
            return pad(np.empty((len(q), 0), np.int64), np.empty((len(q), 0), np.float32), k)
        params: dict[str, Any] = {"metric_type": self._milvus_metric, "params": {}}
        if self.params.index_type == "HNSW":
            ef = tuning.get("ef_search", self.params.ef_search)
            params["params"]["ef"] = max(ef, limit)  # Milvus needs ef >= limit
        expr = to_expr(filters)
        found = self._conn().call("search", lambda c: c.search(
            name, data=q.tolist(), limit=limit, search_params=params, output_fields=["id"],
            filter=expr, timeout=self._timeout), name)
        ids, scores = self._result_arrays(found, len(q), limit)
        if scale is not None:
            scores *= np.asarray(scale, dtype=np.float32)
        scores[ids < 0] = -np.inf
        return pad(ids, scores, k) if limit < k else (ids, scores)

    def check_search_params(self, search_params: dict[str, Any] | None) -> dict[str, int]:
        """Validated per-call knobs (``{}`` for None), or InvalidInput naming what is allowed."""
        return check_search_knobs(self.kind, dict(self.search_knobs), search_params)

    def save(self, folder: str | Path) -> None:
        """Write ``index.json``, the pointer to this index's collection (see the module
        docstring); a frozen index is copied first, so every snapshot owns its collection."""
        if self.collection is None:
            self.build(np.empty((0, self.dim), np.float32), np.empty(0, np.int64))
        elif self._frozen:
            self._writable()
        assert self.collection is not None
        sample_ids, digest = self._sample(self.collection)
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        write_meta(path, {
            "kind": self.kind, "dim": self.dim, "metric": self.metric,
            "params": asdict(self.params),
            "state": {"collection": self.collection, "count": self._count,
                      "sample_ids": sample_ids, "sample_sha256": digest},
        })
        self._frozen = True

    @classmethod
    def load(cls, folder: str | Path) -> Index:
        """Read an index written by :meth:`save` (dispatches on ``index.json``)."""
        from embedops.index import load_index

        return load_index(folder)

    def memory_bytes(self) -> int:
        """An estimate of the Milvus server memory this index holds (vectors, ids, graph)."""
        per = 4 * self.dim + 8 + (8 * self.params.M if self.params.index_type == "HNSW" else 0)
        return int(max(self._count, 1) * per)

    def describe(self) -> dict[str, Any]:
        """Kind, metric, dim, params, count, memory and the Milvus collection, for status."""
        return {"kind": self.kind, "metric": self.metric, "dim": self.dim,
                "params": asdict(self.params), "count": self.count,
                "memory_bytes": self.memory_bytes(), "collection": self.collection}

    # --- snapshot hooks (called by index.activate_saved / release_saved) ------------------------
    @classmethod
    def activate_saved(cls, folder: Path, meta: Mapping[str, Any], collection: str,
                       model_version: str) -> None:
        """Point the alias of ``collection``/``model_version`` at the saved index's collection
        (see :func:`embedops.index.milvus_params.activate`)."""
        activate(meta, collection, model_version)

    @classmethod
    def release_saved(cls, folder: Path, meta: Mapping[str, Any]) -> None:
        """Drop the collection of a pruned snapshot (kept while an alias names it)."""
        release(meta)

    # --- internals ----------------------------------------------------------------------------
    @property
    def _timeout(self) -> float:
        return float(self.params.timeout_s)

    @property
    def _milvus_metric(self) -> str:
        return "L2" if self.metric == "l2" else "IP"

    def _conn(self) -> Connection:
        return connection(self.params.uri, self._timeout)

    def _prepare(self, vectors: Any, ids: Any) -> tuple[F32, IdArray]:
        vecs = check_vectors(vectors, self.dim, self.metric)
        ids64 = check_ids(ids, len(vecs))
        check_unique(ids64)
        return vecs, ids64

    def _create(self) -> str:
        """A new, empty, loaded collection; returns its name."""
        from pymilvus import DataType

        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        name = f"{self.params.prefix}_{stamp}_{secrets.token_hex(4)}"

        def create(client: Any) -> None:
            schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
            schema.add_field(FIELD, DataType.JSON)
            index = client.prepare_index_params()
            if self.params.index_type == "HNSW":
                index.add_index("vector", index_type="HNSW", metric_type=self._milvus_metric,
                                params={"M": self.params.M,
                                        "efConstruction": self.params.ef_construction})
            else:
                index.add_index("vector", index_type="FLAT", metric_type=self._milvus_metric)
            client.create_collection(name, schema=schema, index_params=index,
                                     consistency_level="Session", timeout=self._timeout)

        self._conn().call(f"create collection {name}", create)
        return name

    def _insert(self, name: str, vecs: F32, ids: IdArray,
                metadata: Sequence[Mapping[str, Any] | None] | None) -> None:
        self._send("insert", name, _rows(vecs, ids, metadata))

    def _send(self, op: str, name: str, rows: list[dict[str, Any]]) -> None:
        """``insert`` or ``upsert`` ``rows`` into collection ``name``, in batches."""
        for start in range(0, len(rows), _BATCH):
            chunk = rows[start:start + _BATCH]

            def write(client: Any, part: list[dict[str, Any]] = chunk) -> Any:
                return getattr(client, op)(name, part, timeout=self._timeout)

            self._conn().call(op, write, name)

    def _drop(self, name: str) -> None:
        """Best effort: a failed build must not leave its collection behind."""
        try:
            self._conn().call(f"drop {name}", lambda c: c.drop_collection(name), name)
        except Exception:  # noqa: BLE001 - the build's own error is the one to report
            pass

    def _writable(self) -> str:
        """The collection to write to: a copy when this index is frozen (see ``save``)."""
        if self.collection is None:
            self.build(np.empty((0, self.dim), np.float32), np.empty(0, np.int64))
        elif self._frozen:
            source, copy = self.collection, self._create()
            try:
                batch: list[dict[str, Any]] = []
                for row in self._scan(["id", "vector", FIELD], source):
                    batch.append(row)
                    if len(batch) >= _BATCH:
                        self._send("insert", copy, batch)
                        batch = []
                self._send("insert", copy, batch)
                self._verify_count(copy, self._count)
            except BaseException:
                self._drop(copy)
                raise
            self.collection, self._frozen = copy, False
        assert self.collection is not None
        return self.collection

    def _scan(self, fields: list[str], name: str | None = None) -> Iterator[dict[str, Any]]:
        """Every row of the collection (``fields`` of each), in pages of ``_BATCH``."""
        target = name or self.collection
        assert target is not None
        conn = self._conn()
        pages = conn.call("query", lambda c: c.query_iterator(
            target, batch_size=_BATCH, filter="", output_fields=fields,
            timeout=self._timeout), target)
        try:
            while True:
                page = conn.call("query", lambda c: pages.next(), target)
                if not page:
                    return
                yield from ({f: row[f] for f in fields} for row in page)
        finally:
            try:
                pages.close()
            except Exception:  # noqa: BLE001 - closing an iterator is best effort
                pass

    def _present(self, ids: IdArray) -> IdArray:
        """The ids of ``ids`` that the index holds."""
        if not len(ids) or self.collection is None:
            return np.empty(0, np.int64)
        if self._ids is not None:
            return ids[np.isin(ids, self._ids)]
        name, found = self.collection, []
        for start in range(0, len(ids), _BATCH):
            chunk: list[int] = ids[start:start + _BATCH].tolist()

            def ask(client: Any, part: list[int] = chunk) -> Any:
                return client.query(name, filter=f"id in {part}", output_fields=["id"],
                                    timeout=self._timeout)

            rows = self._conn().call("query", ask, name)
            found += [int(r["id"]) for r in rows]
        return np.asarray(sorted(found), dtype=np.int64)

    def _learn(self, added: IdArray | None = None, removed: IdArray | None = None) -> None:
        """Keep the count (and the known ids) in step with a write."""
        if added is not None:
            self._count += len(added)
            if self._ids is not None:
                self._ids = np.union1d(self._ids, added)
        if removed is not None:
            self._count -= len(removed)
            if self._ids is not None:
                self._ids = np.setdiff1d(self._ids, removed)

    def problem(self) -> str | None:
        """None while Milvus answers for this index's collection, else what is wrong (for
        readiness: the service is not ready while its external index is unreachable)."""
        if self.collection is None:
            return None
        try:
            self._count_rows(self.collection)
        except EmbedopsError as exc:
            return exc.message
        return None

    def _count_rows(self, name: str) -> int:
        rows = self._conn().call("count", lambda c: c.query(
            name, filter="", output_fields=["count(*)"], timeout=self._timeout), name)
        return int(rows[0]["count(*)"]) if rows else 0

    def _verify_count(self, name: str, expected: int) -> None:
        found = self._count_rows(name)
        if found != expected:
            raise IntegrityError(
                f"the Milvus collection {name!r} holds {found} vectors, {expected} expected",
                "rebuild the index from the catalog (embedops index build)")

    def _verify_build(self, name: str, vecs: F32, ids: IdArray) -> None:
        """The collection holds ``len(ids)`` rows and a sample of them equals ``vecs``."""
        self._verify_count(name, len(ids))
        if not len(ids):
            return
        pick = np.random.default_rng(len(ids)).choice(
            len(ids), min(self.params.sample, len(ids)), replace=False)
        stored = self._vectors(name, ids[pick])
        if not all(np.array_equal(stored.get(int(i), ()), vecs[p]) for i, p in
                   zip(ids[pick], pick, strict=True)):
            raise IntegrityError(
                f"the Milvus collection {name!r} does not hold the vectors it was given",
                "build again; check the Milvus server's health")

    def _vectors(self, name: str, ids: IdArray) -> dict[int, F32]:
        rows = self._conn().call("get", lambda c: c.get(
            name, ids=ids.tolist(), output_fields=["vector"], timeout=self._timeout), name)
        return {int(r["id"]): np.asarray(r["vector"], np.float32) for r in rows}

    def _sample(self, name: str) -> tuple[list[int], str]:
        """Up to ``sample`` ids and the sha256 of their stored vectors (the load check)."""
        self._verify_count(name, self._count)
        ids = self.ids()
        if not len(ids):
            return [], _digest({})
        pick = np.random.default_rng(len(ids)).choice(
            len(ids), min(self.params.sample, len(ids)), replace=False)
        chosen = sorted(int(i) for i in ids[pick])
        return chosen, _digest(self._vectors(name, np.asarray(chosen, np.int64)))

    def _restore(self, path: Path, state: dict[str, Any]) -> None:
        """Reconnect to the collection ``save`` recorded and verify it (``load_index``)."""
        try:
            name, count = str(state["collection"]), int(state["count"])
            sample = [int(i) for i in state["sample_ids"]]
            digest = str(state["sample_sha256"])
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"{path / 'index.json'} does not name a Milvus collection",
                                 "rebuild the index from the catalog") from exc
        self._conn().call(f"load {name}", lambda c: c.load_collection(
            name, timeout=self._timeout), name)
        self.collection, self._count, self._frozen = name, count, True
        self._verify_count(name, count)
        if _digest(self._vectors(name, np.asarray(sample, np.int64))) != digest:
            raise IntegrityError(
                f"the Milvus collection {name!r} no longer holds the vectors of this snapshot",
                "rebuild the index from the catalog (embedops index build)")

    def _result_arrays(self, found: Any, m: int, limit: int) -> tuple[IdArray, F32]:
        ids = np.full((m, limit), -1, np.int64)
        scores = np.full((m, limit), -np.inf, np.float32)
        for row, hits in enumerate(found):
            for col, hit in enumerate(list(hits)[:limit]):
                ids[row, col] = int(hit["id"])
                dist = float(hit["distance"])
                scores[row, col] = -dist if self.metric == "l2" else dist
        return ids, scores


def _rows(vecs: F32, ids: IdArray, metadata: Sequence[Mapping[str, Any] | None] | None
          ) -> list[dict[str, Any]]:
    metas = metadata if metadata is not None else [None] * len(ids)
    return [{"id": int(i), "vector": v, FIELD: encode_metadata(m)}
            for i, v, m in zip(ids.tolist(), vecs.tolist(), metas, strict=True)]


def _check_metadata(metadata: Sequence[Any] | None, n: int) -> None:
    if metadata is not None and len(metadata) != n:
        raise InvalidInput(f"{len(metadata)} metadata records given for {n} vectors",
                           "pass one metadata mapping (or None) per row")


def _digest(vectors: Mapping[int, F32]) -> str:
    h = hashlib.sha256()
    for key in sorted(vectors):
        h.update(str(key).encode() + b":" + np.asarray(vectors[key], "<f4").tobytes())
    return h.hexdigest()
