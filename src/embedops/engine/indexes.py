"""Index lifecycle for the facade: build and publish snapshots, serve them from memory.

One served index per (collection, model version), loaded from ``SnapshotStore.load_current()``
and cached; a new build swaps it in under a lock. A snapshot that fails verification is
quarantined by the store and the previous good one is served; when none is good (or none was
ever built) the index is rebuilt from the catalog, with the kind of the last build or ``flat``.

Every loaded snapshot is compared with the catalog (``engine.consistency``): one that holds
items the catalog no longer has, or lacks items the catalog had when it was built, is never
served; it is rebuilt from the catalog at once (logged). ``check`` repeats the comparison on
demand (``verify``, the server's schedule) and ``status`` reports the last one, as well as what
the last load quarantined or rebuilt. Indexes of encrypted collections are never written to
disk (``engine.memory_index``). ``refresh`` and ``merge`` publish segmented snapshots
(``engine.segment_ops``): the overlay sealed into a new segment, segments merged into one.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import replace
from typing import Any

import numpy as np

from embedops.config import Workspace
from embedops.engine import consistency, memory_index, segment_ops
from embedops.engine.checks import check_model_match
from embedops.engine.consistency import Consistency
from embedops.engine.index_meta import (
    DEFAULT_KIND,
    kind_params,
    load_report,
    public_meta,
    quarantined,
    snapshot_meta,
)
from embedops.engine.models import ModelHub
from embedops.errors import IntegrityError, InvalidInput, NotFound, Unavailable
from embedops.index import IN_PROCESS
from embedops.index.base import FaissIndex
from embedops.index.merge_policy import MergeRate
from embedops.index.protocol import Index
from embedops.index.segments import (
    INDEX_DIR,
    MAX_SEGMENTS,
    SegmentedIndex,
    read_live_keys,
    summaries,
)
from embedops.index.snapshot import CURRENT, SnapshotCheck, SnapshotStore
from embedops.progress import progress_bar
from embedops.search.served import ServedIndex, catalog_position
from embedops.search.sync import CatalogWatch
from embedops.store.catalog import Catalog

log = logging.getLogger(__name__)

#: a search that finds this many items in the overlay starts a refresh in the background
AUTO_REFRESH_ITEMS = 50_000


class IndexManager:
    """Builds, caches, verifies and rolls back the indexes of a workspace's collections."""

    def __init__(self, workspace: Workspace, catalog: Catalog, hub: ModelHub) -> None:
        self.workspace, self.catalog, self.hub = workspace, catalog, hub
        self._lock = threading.Lock()
        self._served: dict[tuple[str, str], ServedIndex] = {}
        self._loading: dict[tuple[str, str], threading.RLock] = {}
        self.watch = CatalogWatch(catalog.path)
        self._pointer_paths: dict[tuple[str, str], str] = {}
        self._pointers: dict[tuple[str, str], tuple[int, int, int] | None] = {}
        self._checks: dict[tuple[str, str], Consistency] = {}
        self._loads: dict[tuple[str, str], dict[str, Any]] = {}
        self._refreshing: set[tuple[str, str]] = set()

    def store(self, collection: str, model_version: str) -> SnapshotStore:
        """The SnapshotStore of ``collection`` for ``model_version``."""
        return SnapshotStore(self.workspace.snapshot_root(collection, model_version))

    def version(self, collection: str, model_version: str | None) -> str:
        """``model_version`` resolved to ``name@N``, default the collection's active version."""
        info = self.catalog.get_collection(collection)
        return self.hub.resolve(model_version).ref if model_version else info.model_version

    def in_memory_only(self, collection: str) -> bool:
        """True when ``collection``'s indexes are never written to disk (it is encrypted)."""
        return bool(self.catalog.get_collection(collection).encrypted)

    # -- building ------------------------------------------------------------------------------
    def build(
        self,
        collection: str,
        kind: str = DEFAULT_KIND,
        params: dict[str, Any] | None = None,
        model_version: str | None = None,
        quiet: bool | None = None,
    ) -> dict[str, Any]:
        """Build an index of ``kind`` from the catalog's vectors, publish it as a snapshot and
        serve it. Returns the snapshot summary. Builds of one index run one at a time, so the
        served index is always the last one published."""
        version = self.version(collection, model_version)
        with self._guard(collection, version):
            return self._build(collection, kind, params, version, quiet)

    def _build(
        self, collection: str, kind: str, params: dict[str, Any] | None, version: str,
        quiet: bool | None,
    ) -> dict[str, Any]:
        from embedops.index import make_index

        info = self.catalog.get_collection(collection)
        mv = self.hub.resolve(version)
        index = make_index(kind, mv.dim, info.metric, params)
        started = time.time()
        position = catalog_position(self.catalog, collection)
        ids, vectors = self.catalog.load_vectors(collection, version)
        if not ids and info.item_count:
            raise Unavailable(
                f"collection '{collection}' has {info.item_count} items but no {version} "
                f"vectors to build a {kind} index from",
                "ingest items first (or backfill this model version's vectors)",
            )
        with progress_bar(f"index {collection} ({kind})", total=len(ids), unit="vectors",
                          quiet=quiet) as task:
            index.build(np.asarray(vectors, np.float32).reshape(len(ids), mv.dim),
                        np.arange(len(ids), dtype=np.int64))
            task.advance(len(ids))
        meta = {
            "collection": collection, "model_version": version, "dim": mv.dim,
            "metric": info.metric, "tokenizer_fingerprint": mv.tokenizer_fingerprint,
            "kind": kind, "params": dict(params or {}), **position,
            consistency.META_KEY: consistency.record(ids, version),
        }
        served = self._publish(collection, version, info.encrypted, index, list(ids), meta)
        key = (collection, version)
        with self._lock:
            self._served[key] = served
        self._checks[key] = consistency.compare(self.catalog, collection, version,
                                                served.live_keys(), served.meta)
        return {**public_meta(served.meta), "count": len(ids),
                "build_seconds": round(time.time() - started, 3)}

    def _publish(self, collection: str, version: str, encrypted: bool, index: Index,
                 ids: list[str], meta: dict[str, Any]) -> ServedIndex:
        """A snapshot on disk, or for an encrypted collection an index in memory only."""
        if encrypted:
            root = self.workspace.snapshot_root(collection, version)
            memory_index.purge_plain(root, collection)
            memory_index.write_spec(root, str(meta["kind"]), meta["params"])
            return ServedIndex(index, ids, memory_index.memory_meta(meta, len(ids)))
        snap = self.store(collection, version).publish(index, ids, meta)
        if isinstance(index, FaissIndex):  # served from the snapshot's files, as once loaded
            index.map_saved(snap.path / INDEX_DIR)
        return ServedIndex(index, ids, snapshot_meta(snap), snap)

    # -- segments ------------------------------------------------------------------------------
    def refresh(self, collection: str, model_version: str | None = None,
                max_segments: int = MAX_SEGMENTS, merge_rate: float | None = None
                ) -> dict[str, Any]:
        """Seal the items written since the snapshot into a new segment (built from them
        only) and publish it; past ``max_segments`` segments the size-tiered policy merges
        the small ones. ``merge_rate``: vectors a second the builds may add (0: unlimited;
        None: ``$EMBEDOPS_MERGE_RATE``). Returns the new snapshot's summary (``changed``
        False: nothing to do)."""
        if isinstance(max_segments, bool) or not isinstance(max_segments, int) or \
                max_segments < 1:
            raise InvalidInput(f"max_segments must be a positive integer, got {max_segments!r}")
        rate = _merge_rate(merge_rate)
        version = self.version(collection, model_version)
        with self._guard(collection, version):
            out = segment_ops.seal(self, collection, version, None, rate=rate)
            if out["segments"] > max_segments:
                merged = segment_ops.seal(self, collection, version, segment_ops.POLICY,
                                          max_segments, rate=rate)
                out = {**merged, "added": out["added"]}
            return out

    def merge(self, collection: str, model_version: str | None = None,
              merge_rate: float | None = None) -> dict[str, Any]:
        """Merge every segment (and the items written since) into one, dropping tombstones;
        ``merge_rate`` as for ``refresh``."""
        rate = _merge_rate(merge_rate)
        version = self.version(collection, model_version)
        with self._guard(collection, version):
            return segment_ops.seal(self, collection, version, segment_ops.ALL, rate=rate)

    def _guard(self, collection: str, version: str) -> threading.RLock:
        with self._lock:
            return self._loading.setdefault((collection, version), threading.RLock())

    def install(self, collection: str, version: str, served: ServedIndex) -> None:
        """Serve ``served``, just published (its consistency is checked again on demand)."""
        key = (collection, version)
        served.sync(self.catalog, collection)
        with self._lock:
            self._served[key] = served
        self._checks.pop(key, None)
        self._pointers[key] = self._pointer(collection, version)

    # -- serving -------------------------------------------------------------------------------
    def problems(self) -> dict[str, str]:
        """What is wrong with served indexes that live outside this process (an external
        backend such as Milvus that stopped answering): ``{"collection/version": message}``;
        in-process indexes have nothing to report."""
        with self._lock:
            served = list(self._served.items())
        out = {}
        for (collection, version), entry in served:
            check = getattr(entry.index, "problem", None)
            found = check() if callable(check) else None
            if found:
                out[f"{collection}/{version}"] = str(found)
        return out

    def is_loaded(self, collection: str, model_version: str) -> bool:
        """True when the index of ``collection``/``model_version`` is in memory already."""
        with self._lock:
            return (collection, model_version) in self._served

    def served(self, collection: str, model_version: str) -> ServedIndex:
        """The in-memory index of ``collection``/``model_version``, synced with the catalog."""
        key = (collection, model_version)
        generation = self.watch.generation()  # before the look, so no commit slips between
        with self._lock:
            served = self._served.get(key)
            loading = self._loading.setdefault(key, threading.RLock())
        if served is not None and self._replaced(collection, model_version, served):
            with self._lock:
                if self._served.get(key) is served:
                    del self._served[key]
            served = None
        if served is None:
            with loading:
                with self._lock:
                    served = self._served.get(key)
                if served is None:
                    served = self._load(collection, model_version)
                    with self._lock:
                        self._served[key] = served
        served.sync(self.catalog, collection, generation)
        if served.pending >= AUTO_REFRESH_ITEMS:
            self._refresh_soon(collection, model_version, served)
        return served

    def _refresh_soon(self, collection: str, version: str, served: ServedIndex) -> None:
        """Seal a large overlay into a segment in a background thread (one at a time per
        index; never for an index kept in memory or in a server). Searches go on meanwhile."""
        key = (collection, version)
        if served.info is None or kind_params(served.meta)[0] not in IN_PROCESS:
            return
        with self._lock:
            if key in self._refreshing:
                return
            self._refreshing.add(key)
        threading.Thread(target=self._auto_refresh, args=key, daemon=True,
                         name=f"refresh-{collection}").start()

    def _auto_refresh(self, collection: str, version: str) -> None:
        try:
            self.refresh(collection, version)
        except Exception as exc:  # noqa: BLE001 - logged; the overlay keeps serving the writes
            log.warning("automatic refresh of %s/%s failed: %s", collection, version, exc)
        finally:
            with self._lock:
                self._refreshing.discard((collection, version))

    def _pointer(self, collection: str, version: str) -> tuple[int, int, int] | None:
        """A stamp of the ``CURRENT`` pointer file; publish and rollback replace it atomically
        (a rename gives a new inode), so a changed stamp means the served snapshot may differ."""
        path = self._pointer_paths.get((collection, version))
        if path is None:
            path = str(self.workspace.snapshot_root(collection, version) / CURRENT)
            self._pointer_paths[(collection, version)] = path
        try:
            st = os.stat(path)
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def _replaced(self, collection: str, version: str, served: ServedIndex) -> bool:
        """True when another process published or rolled back. A stat of the pointer on each
        search; the manifest is read only when the pointer changed (verification is at load).
        An in-memory index (encrypted collection) has no pointer: only a build replaces it."""
        key = (collection, version)
        stamp = self._pointer(collection, version)
        if key in self._pointers and self._pointers[key] == stamp:
            return False
        if memory_index.is_memory(served.meta):
            return False
        try:
            current = self.store(collection, version).current()
        except IntegrityError:
            return True
        if current is None or current.name != served.meta.get("name"):
            return True
        self._pointers[key] = stamp
        return False

    def _load(self, collection: str, version: str) -> ServedIndex:
        key = (collection, version)
        if self.in_memory_only(collection):
            kind, params = memory_index.read_spec(
                self.workspace.snapshot_root(collection, version)) or (DEFAULT_KIND, None)
            self._loads[key] = {"at": time.time(), "rebuilt": None, "storage": "memory"}
            self.build(collection, kind, params, version, quiet=True)
            return self._served[key]
        store = self.store(collection, version)
        self._pointers[key] = self._pointer(collection, version)
        kind, params = self._last_build(store)
        before = quarantined(store)
        try:
            loaded = store.load_current()
        except (IntegrityError, Unavailable) as exc:
            self._loads[key] = {"at": time.time(), "quarantined": quarantined(store) - before,
                                "rebuilt": "no good snapshot"}
            log.warning("no good snapshot for %s/%s (%s); rebuilding from the catalog",
                        collection, version, exc)
            self.build(collection, kind, params, version, quiet=True)
            return self._served[key]
        self._loads[key] = {"at": time.time(), "quarantined": quarantined(store) - before,
                            "rebuilt": None}
        meta = snapshot_meta(loaded.info)
        self._check_model(collection, version, meta)
        served = ServedIndex(loaded.index, loaded.keys, meta, loaded.info)
        check = consistency.compare(self.catalog, collection, version, served.live_keys(), meta)
        if not check.ok:
            return self._repair(collection, version, check, kind, params)
        self._checks[key] = check
        return served

    def _repair(self, collection: str, version: str, found: Consistency, kind: str,
                params: dict[str, Any] | None) -> ServedIndex:
        """Rebuild an index that diverges from the catalog; the check notes what it repaired."""
        log.warning(
            "the index of %s/%s (snapshot %s) diverges from the catalog: %d item(s) only in "
            "the index, %d only in the catalog; rebuilding it from the catalog",
            collection, version, found.snapshot, found.index_only, found.catalog_only,
        )
        key = (collection, version)
        self.build(collection, kind, params, version, quiet=True)
        self._checks[key] = found.after_repair(self._checks[key])
        self._loads.setdefault(key, {"at": time.time()})["rebuilt"] = "diverged from the catalog"
        return self._served[key]

    @staticmethod
    def _last_build(store: Any) -> tuple[str, dict[str, Any] | None]:
        """Kind and params of the current snapshot (read before a corrupt one is quarantined),
        so a rebuild makes the same kind of index; ``flat`` when there is none."""
        try:
            meta = snapshot_meta(store.current())
        except IntegrityError:
            return DEFAULT_KIND, None
        return kind_params(meta)

    def _check_model(self, collection: str, version: str, meta: dict[str, Any]) -> None:
        mv = self.hub.resolve(version)
        check_model_match(f"the index of '{collection}'", meta, mv.ref, mv.dim,
                          mv.tokenizer_fingerprint,
                          f"rebuild it with 'embedops index build {collection}'")

    def forget(self, collection: str) -> None:
        """Drop cached indexes of ``collection`` (after it is deleted or rolled back)."""
        with self._lock:
            for key in [k for k in self._served if k[0] == collection]:
                del self._served[key]
                self._checks.pop(key, None)

    # -- consistency with the catalog ----------------------------------------------------------
    def check(self, collection: str, model_version: str | None = None, repair: bool = False
              ) -> Consistency | None:
        """Compare the served index (else the current snapshot on disk) with the catalog now;
        ``repair`` rebuilds one that diverges. None when there is no index to compare."""
        version = self.version(collection, model_version)
        key = (collection, version)
        with self._lock:
            served = self._served.get(key)
        if served is not None:
            keys, meta = served.live_keys(), served.meta
        else:
            found = self._snapshot_keys(collection, version)
            if found is None:
                return None
            keys, meta = found
        result = consistency.compare(self.catalog, collection, version, keys, meta)
        if not result.ok and repair:
            kind, params = kind_params(meta)
            with self._guard(collection, version):
                self._repair(collection, version, result, kind, params)
            return self._checks[key]
        self._checks[key] = result
        return result

    def _snapshot_keys(self, collection: str, version: str
                       ) -> tuple[list[str], dict[str, Any]] | None:
        """Item ids and meta of the current snapshot, read without loading the index (None
        when there is none, or it is unreadable: ``verify`` reports that)."""
        if self.in_memory_only(collection):
            return None
        try:
            info = self.store(collection, version).current()
        except IntegrityError:
            return None
        if info is not None and info.segments:
            keys = read_live_keys(info.path)
        else:
            keys = None if info is None else consistency.read_keys(info.path)
        return None if keys is None or info is None else (keys, snapshot_meta(info))

    def last_check(self, collection: str, version: str) -> Consistency | None:
        """The last comparison of that index with the catalog, made now if none was."""
        found = self._checks.get((collection, version))
        return found if found is not None else self.check(collection, version)

    # -- status, verify, rollback -------------------------------------------------------------
    def status(self, collection: str, model_version: str | None = None) -> dict[str, Any]:
        """Snapshot, item count, freshness (count and age of items not in the snapshot), the
        last consistency check with the catalog and what the last load quarantined or rebuilt."""
        info = self.catalog.get_collection(collection)
        version = self.version(collection, model_version)
        store = self.store(collection, version)
        served = self._served.get((collection, version))
        snaps = store.list()
        if info.encrypted:
            current = public_meta(served.meta) if served is not None else None
        else:
            current = public_meta(store.current()) if snaps else None
        since = float(current.get("catalog_ts", 0.0)) if current else 0.0
        changes = self.catalog.changes_since(collection, since) if current else []
        now = time.time()
        check = self.last_check(collection, version) if current else None
        return {
            "collection": collection, "model_version": version,
            "items": info.item_count, "snapshot": current, "snapshots": len(snaps),
            "storage": memory_index.STORAGE if info.encrypted else "disk",
            "freshness": {
                "stale_items": len(changes) if current else info.item_count,
                "oldest_stale_age_s": round(now - min(c[1] for c in changes), 3)
                if changes else 0.0,
                "snapshot_age_s": round(now - since, 3) if current else None,
            },
            "served": None if served is None else {
                "count": served.count, "overlay": served.pending,
                "tombstones": served.tombstoned, "memory_bytes": served.memory_bytes(),
                "rebuild_recommended": served.rebuild_recommended(),
                "segments": summaries(served.index)
                if isinstance(served.index, SegmentedIndex) else None,
            },
            "consistency": None if check is None else check.to_dict(),
            "load": load_report(self._loads.get((collection, version))),
        }

    def verify(self, collection: str, model_version: str | None = None) -> list[SnapshotCheck]:
        """Verify the checksums of every snapshot of the collection's index, then compare the
        served (else current) index with the catalog: a check named ``catalog``."""
        version = self.version(collection, model_version)
        checks = [] if self.in_memory_only(collection) else \
            self.store(collection, version).verify(all=True)
        found = self.check(collection, version)
        if found is not None:
            checks.append(SnapshotCheck("catalog", found.ok, list(found.problems)))
        return checks

    def rollback(self, collection: str, model_version: str | None = None) -> dict[str, Any]:
        """Serve the previous snapshot again; returns its summary."""
        version = self.version(collection, model_version)
        if self.in_memory_only(collection):
            raise NotFound(
                f"collection '{collection}' is encrypted: its index is kept in memory only, "
                "with no snapshots on disk to roll back to",
                f"rebuild it with 'embedops index build {collection}'",
            )
        info = self.store(collection, version).rollback()
        with self._lock:
            self._served.pop((collection, version), None)
            self._checks.pop((collection, version), None)
        return public_meta(info)


def _merge_rate(vectors_per_s: float | None) -> MergeRate | None:
    """The build pace a caller asked for (``None``: the environment's, ``MergeRate.from_env``);
    InvalidInput for a negative or non-numeric rate."""
    if vectors_per_s is None:
        return None
    return replace(MergeRate.from_env(), vectors_per_s=vectors_per_s)
