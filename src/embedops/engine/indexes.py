"""Index lifecycle for the facade: build and publish snapshots, serve them from memory.

One served index per (collection, model version), loaded from ``SnapshotStore.load_current()``
and cached; a new build swaps it in under a lock. A snapshot that fails verification is
quarantined by the store and the previous good one is served; when none is good (or none was
ever built) the index is rebuilt from the catalog, with the kind of the last build or ``flat``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import numpy as np

from embedops.config import Workspace
from embedops.engine.checks import check_model_match
from embedops.engine.models import ModelHub
from embedops.errors import IntegrityError, Unavailable
from embedops.index.snapshot import CURRENT, SnapshotStore
from embedops.progress import progress_bar
from embedops.search.served import ServedIndex, catalog_position
from embedops.search.sync import CatalogWatch
from embedops.store.catalog import Catalog

log = logging.getLogger(__name__)
DEFAULT_KIND = "flat"


def _info_dict(info: Any) -> dict[str, Any]:
    if info is None:
        return {}
    if isinstance(info, dict):
        return dict(info)
    if hasattr(info, "to_dict"):
        return dict(info.to_dict())
    from dataclasses import asdict, is_dataclass

    if is_dataclass(info) and not isinstance(info, type):
        return asdict(info)
    return dict(vars(info))


def snapshot_meta(info: Any) -> dict[str, Any]:
    """The build metadata stored with a snapshot (the ``meta`` given to ``publish``)."""
    data = _info_dict(info)
    meta = dict(data.get("meta") or {})
    for key in ("name", "path", "collection", "model_version", "built_at", "item_count",
                "backend", "current"):
        if key in data and key not in meta:
            meta[key] = str(data[key]) if key == "path" else data[key]
    return meta


def public_meta(info: Any) -> dict[str, Any]:
    """``snapshot_meta`` without the change-tracking bookkeeping (for status and summaries)."""
    return {k: v for k, v in snapshot_meta(info).items() if k != "catalog_seen"}


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

    def store(self, collection: str, model_version: str) -> SnapshotStore:
        """The SnapshotStore of ``collection`` for ``model_version``."""
        return SnapshotStore(self.workspace.snapshot_root(collection, model_version))

    def version(self, collection: str, model_version: str | None) -> str:
        """``model_version`` resolved to ``name@N``, default the collection's active version."""
        info = self.catalog.get_collection(collection)
        return self.hub.resolve(model_version).ref if model_version else info.model_version

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
        with self._lock:
            guard = self._loading.setdefault((collection, version), threading.RLock())
        with guard:
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
        if not ids and (kind != DEFAULT_KIND or info.item_count):
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
        }
        snap = self.store(collection, version).publish(index, list(ids), meta)
        served = ServedIndex(index, ids, snapshot_meta(snap), snap)
        with self._lock:
            self._served[(collection, version)] = served
        return {**public_meta(snap), "count": len(ids),
                "build_seconds": round(time.time() - started, 3)}

    # -- serving -------------------------------------------------------------------------------
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
        return served

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
        search; the manifest is read only when the pointer changed (verification is at load)."""
        key = (collection, version)
        stamp = self._pointer(collection, version)
        if key in self._pointers and self._pointers[key] == stamp:
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
        store = self.store(collection, version)
        self._pointers[(collection, version)] = self._pointer(collection, version)
        kind, params = self._last_build(store)
        try:
            loaded = store.load_current()
        except (IntegrityError, Unavailable) as exc:
            log.warning("no good snapshot for %s/%s (%s); rebuilding from the catalog",
                        collection, version, exc)
            self.build(collection, kind, params, version, quiet=True)
            return self._served[(collection, version)]
        meta = snapshot_meta(loaded.info)
        self._check_model(collection, version, meta)
        return ServedIndex(loaded.index, loaded.keys, meta, loaded.info)

    @staticmethod
    def _last_build(store: Any) -> tuple[str, dict[str, Any] | None]:
        """Kind and params of the current snapshot (read before a corrupt one is quarantined),
        so a rebuild makes the same kind of index; ``flat`` when there is none."""
        try:
            meta = snapshot_meta(store.current())
        except IntegrityError:
            return DEFAULT_KIND, None
        kind = meta.get("kind")
        params = meta.get("params")
        if not isinstance(kind, str):
            return DEFAULT_KIND, None
        return kind, dict(params) if isinstance(params, dict) else None

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

    # -- status, verify, rollback -------------------------------------------------------------
    def status(self, collection: str, model_version: str | None = None) -> dict[str, Any]:
        """Snapshot, item count and freshness (count and age of items not in the snapshot)."""
        info = self.catalog.get_collection(collection)
        version = self.version(collection, model_version)
        store = self.store(collection, version)
        snaps = store.list()
        current = public_meta(store.current()) if snaps else None
        since = float(current.get("catalog_ts", 0.0)) if current else 0.0
        changes = self.catalog.changes_since(collection, since) if current else []
        now = time.time()
        served = self._served.get((collection, version))
        return {
            "collection": collection, "model_version": version,
            "items": info.item_count, "snapshot": current, "snapshots": len(snaps),
            "freshness": {
                "stale_items": len(changes) if current else info.item_count,
                "oldest_stale_age_s": round(now - min(c[1] for c in changes), 3)
                if changes else 0.0,
                "snapshot_age_s": round(now - since, 3) if current else None,
            },
            "served": None if served is None else {
                "count": served.count, "overlay": served.pending,
                "tombstones": served.tombstoned,
                "rebuild_recommended": served.rebuild_recommended(),
            },
        }

    def verify(self, collection: str, model_version: str | None = None) -> Any:
        """Verify the checksums of every snapshot of the collection's index."""
        version = self.version(collection, model_version)
        return self.store(collection, version).verify(all=True)

    def rollback(self, collection: str, model_version: str | None = None) -> dict[str, Any]:
        """Serve the previous snapshot again; returns its summary."""
        version = self.version(collection, model_version)
        info = self.store(collection, version).rollback()
        with self._lock:
            self._served.pop((collection, version), None)
        return public_meta(info)
