"""Refresh and merge of a collection's index as segments (issue 19, item 1), for ``IndexManager``.

``seal`` publishes a new segmented snapshot from the served one, under the index's build guard:

* the catalog position is taken first, then the served index is synced, so every write
  committed before the new snapshot's ``catalog_ts`` is in it (one made later is applied again
  by the next load's change tracker, which is harmless, as after a build);
* the overlay (items written since the snapshot) becomes one new segment, built by the index's
  own backend from those items only; the served tombstones (items deleted or rewritten) join
  each segment's tombstones in the new manifest;
* the segments to merge (``merge="all"``, or the size-tiered ``merge_plan``) are folded into
  that new segment from the catalog's vectors of their live items, dropping their tombstones;
* the other segments are kept: hard links on disk, the same FAISS objects in memory.

The new snapshot is published with the atomic ``CURRENT`` swap (``SnapshotStore.
publish_segments``) and served at once. A process killed before the swap leaves only a
``.staging`` folder: the previous manifest stays current and its overlay is rebuilt from the
catalog on the next load, so nothing is lost or duplicated.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from embedops.engine import consistency
from embedops.engine.index_meta import kind_params, public_meta, snapshot_meta
from embedops.errors import InvalidInput
from embedops.index import IN_PROCESS, make_index
from embedops.index.protocol import Index
from embedops.index.segments import (
    MAX_SEGMENTS,
    Segment,
    SegmentedIndex,
    as_segments,
    merge_plan,
    new_segment_name,
)
from embedops.search.served import ServedIndex, catalog_position

if TYPE_CHECKING:
    from embedops.engine.indexes import IndexManager

log = logging.getLogger(__name__)

ALL = "all"
POLICY = "policy"
# a small segment is built exact (flat): searching a few thousand vectors exhaustively costs
# less than a graph or cell search, and compressed backends need many points to train on
_EXACT_BELOW = 2048
_EXACT_BELOW_COMPRESSED = {"ivfpq": 4096, "rabitq": 4096}
_BUILD_META = ("dim", "metric", "tokenizer_fingerprint", "kind", "params")


def seal(mgr: IndexManager, collection: str, version: str, merge: str | None,
         max_segments: int = MAX_SEGMENTS) -> dict[str, Any]:
    """Publish the served index's writes as a new segment (and merge ``merge`` segments:
    ``"all"``, or ``"policy"``: ``merge_plan`` for ``max_segments``); returns the new
    snapshot's summary. The caller holds the index's build guard."""
    started = time.time()
    served = _segmentable(mgr, collection, version)
    position = catalog_position(mgr.catalog, collection)
    served.sync(mgr.catalog, collection)
    new_keys, _, dead = served.live_state()
    assert served.info is not None  # _segmentable checked it
    base = as_segments(served.index, len(served.keys), served.info.name)
    segs = _tombstoned(base, dead)
    chosen = _chosen(SegmentedIndex(segs, base.kind, base.metric, base.dim, base.params), merge,
                     max_segments)
    if not new_keys and not dead and not chosen:
        return {**public_meta(served.meta), "count": served.count, "changed": False,
                "segments": len(base.segments), "added": 0, "merged": 0,
                "seconds": round(time.time() - started, 3)}
    keys, matrix = _items(mgr, collection, version, served, segs, chosen, merge == ALL)
    kept = [s for s in segs if s.name not in chosen and s.live > 0]
    name = new_segment_name()
    fresh = [Segment(name, _build(base, matrix), len(keys))] if keys else []
    index = SegmentedIndex([*kept, *fresh], base.kind, base.metric, base.dim, base.params)
    all_keys = [k for s in kept for k in served.keys[s.offset:s.offset + s.size]] + keys
    live = [k for s in kept for k in _live_keys(served.keys, s)] + keys
    meta = {"collection": collection, "model_version": version,
            **{k: served.meta[k] for k in _BUILD_META if k in served.meta}, **position,
            consistency.META_KEY: consistency.record(live, version)}
    snap = mgr.store(collection, version).publish_segments(served.info.name, index,
                                                           {name: keys} if keys else {}, meta)
    now = ServedIndex(index, all_keys, snapshot_meta(snap), snap)
    mgr.install(collection, version, now)
    return {**public_meta(now.meta), "count": now.count, "changed": True,
            "segments": len(index.segments), "added": len(new_keys), "merged": len(chosen),
            "seconds": round(time.time() - started, 3)}


def _items(mgr: IndexManager, collection: str, version: str, served: ServedIndex,
           segs: list[Segment], chosen: set[str], everything: bool
           ) -> tuple[list[str], np.ndarray]:
    """Keys and vectors of the new segment: the overlay plus the live items of the segments
    merged, from the catalog (``everything``: every live item, read in one pass)."""
    new_keys, new_vectors, _ = served.live_state()
    if everything:
        ids, vectors = mgr.catalog.load_vectors(collection, version)
        return list(ids), np.asarray(vectors, np.float32).reshape(len(ids), served.dim)
    fold = [k for s in segs if s.name in chosen for k in _live_keys(served.keys, s)]
    if not fold:
        return list(new_keys), new_vectors
    ids, vectors = mgr.catalog.load_vectors(collection, version, fold)
    rows = np.asarray(vectors, np.float32).reshape(len(ids), served.dim)
    return list(ids) + list(new_keys), np.concatenate([rows, new_vectors])


def _segmentable(mgr: IndexManager, collection: str, version: str) -> ServedIndex:
    """The served index, or InvalidInput when it cannot be segmented (and why)."""
    if mgr.in_memory_only(collection):
        raise InvalidInput(
            f"collection '{collection}' is encrypted: its index is kept in memory only, with "
            "no snapshots to add segments to",
            f"rebuild it with 'embedops index build {collection}'")
    served = mgr.served(collection, version)
    kind, _ = kind_params(served.meta)
    if kind not in IN_PROCESS or served.info is None:
        raise InvalidInput(
            f"the {kind} index of '{collection}' keeps its data in a server and cannot be "
            "refreshed in segments", f"rebuild it with 'embedops index build {collection}'")
    return served


def _tombstoned(index: SegmentedIndex, dead: frozenset[int]) -> list[Segment]:
    """The segments with the served tombstones (global ids) added to their own."""
    if not dead:
        return list(index.segments)
    offsets = np.array([s.offset for s in index.segments], np.int64)
    pos = np.fromiter(dead, np.int64, len(dead))
    which = np.searchsorted(offsets, pos, side="right") - 1
    return [replace(s, dead=np.union1d(s.dead, pos[which == n] - s.offset).astype(np.int64))
            for n, s in enumerate(index.segments)]


def _chosen(index: SegmentedIndex, merge: str | None, max_segments: int) -> set[str]:
    if merge is None:
        return set()
    if merge == ALL:
        return {s.name for s in index.segments}
    if merge == POLICY:
        return set(merge_plan(index, max_segments))
    raise InvalidInput(f"unknown merge '{merge}'", f"use '{ALL}' or '{POLICY}'")


def _live_keys(keys: list[str], seg: Segment) -> list[str]:
    dead = set(seg.dead.tolist())
    part = keys[seg.offset:seg.offset + seg.size]
    return part if not dead else [k for i, k in enumerate(part) if i not in dead]


def _build(base: SegmentedIndex, vectors: np.ndarray) -> Index:
    """A new segment of the index's backend over ``vectors`` (ids ``0..n-1``); a small one is
    built exact (flat)."""
    from dataclasses import asdict

    kind = base.kind
    params: dict[str, Any] | None = asdict(base.params)
    if len(vectors) < _EXACT_BELOW_COMPRESSED.get(kind, _EXACT_BELOW):
        kind, params = "flat", None
    index = make_index(kind, base.dim, base.metric, params)
    index.build(np.ascontiguousarray(vectors, np.float32), np.arange(len(vectors), dtype=np.int64))
    return index
