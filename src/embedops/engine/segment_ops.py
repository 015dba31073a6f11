"""Refresh and merge of a collection's index as segments (issue 19, item 1), for ``IndexManager``.

``seal`` publishes a new segmented snapshot from the served one, under the index's build guard:

* the catalog position is taken first, then the served index is synced, so every write
  committed before the new snapshot's ``catalog_ts`` is in it (one made later is applied again
  by the next load's change tracker, which is harmless, as after a build);
* the overlay (items written since the snapshot) becomes one new segment, built by the index's
  own backend from those items only; the served tombstones (items deleted or rewritten) join
  each segment's tombstones in the new manifest;
* except for a cell index (``FOLDABLE``: ivf, ivfpq, rabitq) whose newest segment may grow:
  a refresh then *folds* the overlay into a copy of that segment (``_fold_target``: its codes
  copied, the writes encoded into its trained cells, its tombstones kept, its full vectors
  hard-linked with the new rows as a part of their own; ``folded`` in the summary), so the
  index stays one segment until it passes ``FOLD_GROWTH`` times its cells' training size;
* the segments to merge are folded into that new segment from the catalog's vectors of their
  live items, dropping their tombstones; a graph is not rebuilt from scratch when it need not
  be: the largest hnsw segment merged that has no tombstones (the host) is copied and the
  others' items and the overlay are inserted into the copy, so a merge costs the insertions
  of what joins the host, not of the host again (``reused`` in the summary: the host's
  entries); on a refresh, the size tiers that fill up and the
  small exact segments (under the size a graph is built from: one flat tail, not several);
  ``merge="policy"`` adds the segments worn by tombstones and the smallest until
  ``max_segments``; ``merge="all"`` takes every one (see ``merge_policy.merge_plan``);
* the other segments are kept: hard links on disk, the same FAISS objects in memory;
* the new segment is built at the merge rate (``MergeRate``: ``EMBEDOPS_MERGE_RATE`` vectors
  a second, in ``EMBEDOPS_MERGE_CHUNK`` chunks; unlimited when unset), so a background merge
  sleeps between chunks and leaves the cores to serving;
* the consistency checksum is updated by the items added and removed (``consistency.updated``),
  not recomputed over the collection (except after a full merge, which reads it all anyway).

What a refresh still does in proportion to the collection: the served index's key map
(``ServedIndex`` rebuilds its id -> position dict over every key, ~0.1 s per million) and the
list of keys (a copy of slices, not a Python loop); the catalog position and sync are
proportional to the changes, the files to the new segment (the rest is hard-linked).

The new snapshot is published with the atomic ``CURRENT`` swap (``SnapshotStore.
publish_segments``) and served at once. A process killed before the swap leaves only a
``.staging`` folder: the previous manifest stays current and its overlay is rebuilt from the
catalog on the next load, so nothing is lost or duplicated.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from embedops.engine import consistency
from embedops.engine.index_meta import kind_params, public_meta, snapshot_meta
from embedops.errors import InvalidInput
from embedops.index import IN_PROCESS, make_index
from embedops.index.base import FaissIndex
from embedops.index.ivf import auto_nlist
from embedops.index.merge_policy import MergeRate, Throttle, merge_plan
from embedops.index.protocol import Index
from embedops.index.segments import (
    INDEX_DIR,
    MAX_SEGMENTS,
    SEGMENTS_DIR,
    Segment,
    SegmentedIndex,
    as_segments,
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
         max_segments: int = MAX_SEGMENTS, rate: MergeRate | None = None) -> dict[str, Any]:
    """Publish the served index's writes as a new segment (and merge ``merge`` segments:
    ``"all"``, or ``"policy"``: ``merge_plan`` for ``max_segments``), building it at ``rate``
    (default: ``MergeRate.from_env()``); returns the new snapshot's summary. The caller holds
    the index's build guard."""
    started = time.time()
    rate = rate if rate is not None else MergeRate.from_env()
    served = _segmentable(mgr, collection, version)
    position = catalog_position(mgr.catalog, collection)
    served.sync(mgr.catalog, collection)
    new_keys, _, dead = served.live_state()
    assert served.info is not None  # _segmentable checked it
    base = as_segments(served.index, len(served.keys), served.info.name)
    segs = _tombstoned(base, dead)
    chosen = _chosen(segs, base.kind, merge, max_segments, len(new_keys))
    if not new_keys and not dead and not chosen:
        return {**public_meta(served.meta), "count": served.count, "changed": False,
                "segments": len(base.segments), "added": 0, "merged": 0,
                "seconds": round(time.time() - started, 3)}
    folded = _fold_target(segs, base.kind, len(new_keys)) if merge is None and new_keys \
        and not chosen else None
    if folded is not None:
        chosen = {folded.name}
    host = folded or _host(segs, chosen, base.kind)
    keys, matrix = _items(mgr, collection, version, served, segs, chosen, merge == ALL, host)
    kept = [s for s in segs if s.name not in chosen and s.live > 0]
    name = new_segment_name()
    throttle = Throttle(rate)
    if host is not None:
        keys = served.keys[host.offset:host.offset + host.size] + keys
    # a folded segment keeps its tombstones (its local ids stay); a merge drops them
    carried = folded.dead if folded is not None else np.empty(0, np.int64)
    fresh = [Segment(name, _build(base, matrix, throttle, host), len(keys), dead=carried)] \
        if keys else []
    index = SegmentedIndex([*kept, *fresh], base.kind, base.metric, base.dim, base.params)
    all_keys = _kept_keys(served.keys, kept) + keys
    removed = [served.keys[i] for i in dead]
    check = None if merge == ALL else consistency.updated(
        served.meta.get(consistency.META_KEY), new_keys, removed, version)
    if check is None or check["count"] != index.count:
        # an older snapshot, everything read anyway, or the catalog lacked a merged item's
        # vector: the sum over the new snapshot's live items, from scratch
        live = [k for s in kept for k in _live_keys(served.keys, s)] + keys
        check = consistency.record(live, version)
    meta = {"collection": collection, "model_version": version,
            **{k: served.meta[k] for k in _BUILD_META if k in served.meta}, **position,
            consistency.META_KEY: check}
    snap = mgr.store(collection, version).publish_segments(served.info.name, index,
                                                           {name: keys} if keys else {}, meta)
    for seg in fresh:  # served from its files, as once loaded (a later fold links them)
        if isinstance(seg.index, FaissIndex):
            seg.index.map_saved(snap.path / SEGMENTS_DIR / seg.name / INDEX_DIR)
    key_pos = _next_key_pos(served, kept, index, keys, host)
    now = ServedIndex(index, all_keys, snapshot_meta(snap), snap, key_pos)
    mgr.install(collection, version, now)
    return {**public_meta(now.meta), "count": now.count, "changed": True,
            "segments": len(index.segments), "added": len(new_keys), "merged": len(chosen),
            "reused": host.size if host is not None else 0, "folded": folded is not None,
            "seconds": round(time.time() - started, 3),
            "throttled_s": round(throttle.slept, 3)}


def _next_key_pos(served: ServedIndex, kept: list[Segment], index: SegmentedIndex,
                  fresh: list[str], host: Segment | None = None) -> dict[str, int] | None:
    """The new served index's id -> position map, derived from the old one in time
    proportional to the change, when every kept segment keeps its offset (the merged segments
    were the newest, as the size tiers make them); ``None`` (rebuild it) otherwise. A ``host``
    that stays where it was (a folded segment) keeps its entries' positions: only the rows
    after it are new."""
    if [s.offset for s in kept] != [s.offset for s in index.segments[:len(kept)]]:
        return None
    end = kept[-1].offset + kept[-1].size if kept else 0
    same = host.size if host is not None and host.offset == end else 0
    pos = dict(served.key_pos)
    keys = served.keys
    # entries gone: those of the merged segments (their live items are in fresh) and the
    # tombstoned ones; an id's entry is dropped only where it was the live one
    for i in itertools.chain(range(end + same, len(keys)),
                             (i for i in index.masked() if i < end + same)):
        if pos.get(keys[i]) == i:
            del pos[keys[i]]
    for n in range(same, len(fresh)):
        pos[fresh[n]] = end + n
    return pos


def _kept_keys(keys: list[str], kept: list[Segment]) -> list[str]:
    """The keys of the kept segments, in order (slices of the served keys, joined)."""
    out: list[str] = []
    for seg in kept:
        out.extend(keys[seg.offset:seg.offset + seg.size])
    return out


def _items(mgr: IndexManager, collection: str, version: str, served: ServedIndex,
           segs: list[Segment], chosen: set[str], everything: bool, host: Segment | None
           ) -> tuple[list[str], np.ndarray]:
    """Keys and vectors the new segment gets beyond the ``host``'s entries (which it keeps):
    the overlay plus the live items of the other segments merged, from the catalog
    (``everything``: every live item of the catalog, read in one pass)."""
    new_keys, new_vectors, _ = served.live_state()
    if everything:
        ids, vectors = mgr.catalog.load_vectors(collection, version)
        rows = np.asarray(vectors, np.float32).reshape(len(ids), served.dim)
        if host is None:
            return list(ids), rows
        hosted = set(served.keys[host.offset:host.offset + host.size])
        rest = [i for i, key in enumerate(ids) if key not in hosted]
        return [ids[i] for i in rest], rows[rest]
    fold = [k for s in segs if s.name in chosen and s is not host
            for k in _live_keys(served.keys, s)]
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


def _chosen(segs: list[Segment], kind: str, merge: str | None, max_segments: int,
            incoming: int) -> set[str]:
    """The segments to merge: ``None`` (a refresh): the size tiers that fill up;
    ``"policy"``: those, the worn ones and the smallest until ``max_segments``; ``"all"``:
    every one."""
    # the small segments a graph or cell index builds exact (a flat index: all of them)
    floor = 0 if kind == "flat" else _EXACT_BELOW_COMPRESSED.get(kind, _EXACT_BELOW)
    if merge is None:
        return set(merge_plan(segs, None, incoming, worn=False, floor=floor))
    if merge == ALL:
        return {s.name for s in segs}
    if merge == POLICY:
        return set(merge_plan(segs, max_segments, incoming, floor=floor))
    raise InvalidInput(f"unknown merge '{merge}'", f"use '{ALL}' or '{POLICY}'")


#: backends whose segment a merge extends (a copy plus insertions) instead of rebuilding: a
#: graph's insertions do not depend on what was inserted before them; cell indexes (ivf,
#: rabitq, ...) are rebuilt by a merge, which also retrains their cells
EXTENDABLE = ("hnsw",)
#: backends whose newest segment a refresh extends with the writes instead of sealing them as
#: one more segment: a cell index adds a vector by encoding it into its nearest trained cell
#: (no search, unlike a graph), and its full vectors gain a new part instead of a rewrite
#: (``VectorStore``), so the copy costs its codes and the writes; one segment then serves
#: where two would be searched
FOLDABLE = ("ivf", "ivfpq", "rabitq")
#: a segment is extended while it holds at most this many times the vectors its cells were
#: trained on; past that, the writes are sealed apart and a merge retrains the cells
FOLD_GROWTH = 2.0


def _fold_target(segs: list[Segment], kind: str, incoming: int) -> Segment | None:
    """The segment a refresh extends with ``incoming`` writes, or None (seal them apart):
    the newest segment, of a ``FOLDABLE`` kind, holding every local id it was built with
    (``0..size-1``) and staying within ``FOLD_GROWTH`` of its cells' training size."""
    from embedops.index.ivf import IVFIndex

    if kind not in FOLDABLE or not segs:
        return None
    last = segs[-1]
    index = last.index
    if index.kind != kind or not isinstance(index, IVFIndex) or index._index is None or \
            int(index.count) != last.size:
        return None
    trained = int(getattr(index, "_trained_on", 0))
    if not trained or last.size + incoming > FOLD_GROWTH * trained:
        return None
    return last if index.ids_are_rows() else None


def _host(segs: list[Segment], chosen: set[str], kind: str) -> Segment | None:
    """The merged segment to extend: the largest chosen one of an ``EXTENDABLE`` kind with no
    tombstones (every node of its copy stays live; one with tombstones is rebuilt, which
    drops them); ``None``: build the merged segment from scratch."""
    if kind not in EXTENDABLE:
        return None
    hosts = [s for s in segs if s.name in chosen and s.index.kind == kind and not len(s.dead)
             and s.index.count == s.size and not getattr(s.index, "tombstones", 0)]
    return max(hosts, key=lambda s: s.size, default=None)


def _live_keys(keys: list[str], seg: Segment) -> list[str]:
    dead = set(seg.dead.tolist())
    part = keys[seg.offset:seg.offset + seg.size]
    return part if not dead else [k for i, k in enumerate(part) if i not in dead]


def _build(base: SegmentedIndex, vectors: np.ndarray, throttle: Throttle,
           host: Segment | None = None) -> Index:
    """A new segment of the index's backend over ``vectors`` (ids ``0..n-1``), built at the
    throttle's rate; a small one is built exact (flat). With a ``host``: a copy of its index
    (ids ``0..size-1``) with ``vectors`` added as the ids after them."""
    from dataclasses import asdict

    if host is not None:
        assert isinstance(host.index, FaissIndex)  # EXTENDABLE, FOLDABLE: FAISS backends
        extended = host.index.copy()
        rows = np.ascontiguousarray(vectors, np.float32)
        ids = np.arange(host.size, host.size + len(rows), dtype=np.int64)
        for start, stop in throttle.chunks(0, len(rows)):
            extended.add(rows[start:stop], ids[start:stop])
        return extended
    kind = base.kind
    params: dict[str, Any] | None = asdict(base.params)
    n = len(vectors)
    if n < _EXACT_BELOW_COMPRESSED.get(kind, _EXACT_BELOW):
        kind, params = "flat", None
    first = n
    if throttle.rate.limited:
        first = min(n, throttle.rate.chunk)
        if params is not None and "nlist" in params:  # cells trained on the first chunk
            params["nlist"] = params["nlist"] or auto_nlist(n)
            first = min(n, max(first, 39 * params["nlist"]))  # FAISS: >= 39 points a cell
    index = make_index(kind, base.dim, base.metric, params)
    rows = np.ascontiguousarray(vectors, np.float32)
    ids = np.arange(n, dtype=np.int64)
    index.build(rows[:first], ids[:first])
    for start, stop in throttle.chunks(first, n):
        index.add(rows[start:stop], ids[start:stop])
    return index
