"""Segmented snapshots: one served index made of several immutable segments (issue 19).

A segmented snapshot (manifest ``format`` 3) lists its segments in order; each is a folder
``segments/<name>/`` holding a saved index (``index/``, any backend) and ``keys.json``
(``keys[id]`` is the item id of local index id ``id``), plus the segment's *tombstones*: the
local ids deleted or rewritten since the segment was built, masked at search time. All of it is
in the sealed manifest (the tombstones) or checksummed by it (the files), so verify, quarantine,
rollback and prune treat a segmented snapshot like any other: one folder, one manifest.

A refresh seals the served overlay into a new segment and publishes a new snapshot whose
unchanged segments are *hard links* to the previous snapshot's files (never copies), with the
checksums the previous manifest recorded for them (never recomputed), so its cost follows the
new items, not the collection. A damaged shared file is damaged in every snapshot linking it,
and each of them fails verification. An unsegmented snapshot (format 2) is read as one segment
named ``seg-<snapshot name>`` when a refresh builds on it.

Global ids: segment ``i``'s local id ``j`` is ``offset_i + j``, where ``offset_i`` is the number
of keys of the segments before it; the served index's ``keys`` are the segments' keys
concatenated. An item id appears live in at most one segment (older copies are tombstoned).

Search (``SegmentedIndex.search``) fans out once per batch of queries, one FAISS call per
*lane* (:mod:`embedops.index.segment_tail`): each graph segment below its wrapper, with
``ef_search`` narrowed to its share of the entries (``segment_knobs``) and its tombstones
skipped by a selector, and the small exact segments together in one matrix product; other
large segments through their own backend. All write into one buffer; the top ``k`` are merged
exactly in numpy and only the winners' labels become global ids. Which segments
merge, and how fast, is :mod:`embedops.index.merge_policy` (size-tiered, rate-limited).
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import shutil
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from embedops.errors import IntegrityError, InvalidInput
from embedops.fsio import atomic_write_bytes, sha256_file
from embedops.index.checks import check_k, check_queries, check_search_knobs, is_int
from embedops.index.protocol import F32, IdArray, Index
from embedops.index.scoring import pad
from embedops.index.segment_tail import (
    CellSkip,
    ExactTail,
    GraphLane,
    Lane,
    Plan,
    finish,
    merge,
    run_lanes,
)

KEYS = "keys.json"
INDEX_DIR = "index"
SEGMENTS_DIR = "segments"
SEGMENTED_FORMAT = 3
SEGMENT_NAME = re.compile(r"\Aseg-\d{8}T\d{12}Z-[0-9a-f]{6}\Z")
#: the size-tiered merge policy (``merge_policy``) runs once a snapshot has more segments
MAX_SEGMENTS = 10
#: exact (flat) segments up to this many entries are searched together, as one matrix
TAIL_ROWS = 16_384
#: a graph holding a share ``f`` of the entries searches with ``ef_search * f ** EF_EXPONENT``
#: (at least ``MIN_EF``; FAISS still returns ``k`` results from a beam narrower than ``k``).
#: Calibrated on recall@10 against graph distance computations (synthetic clustered 128-d and
#: MiniLM 384-d layouts of 3 and 8-10 segments): 0.5 keeps one knob at the recall of one
#: merged graph; exponents 0.75 and 1 cost about the same at equal recall (-8% to +3%) but
#: need a larger knob for it. ``MIN_EF`` 4 instead of 8 saved 0-7% at recall 0.90-0.95.
EF_EXPONENT = 0.5
MIN_EF = 4
#: threads searching the segments of one call at once (0 or 1: the calling thread alone)
FANOUT_THREADS = int(os.environ.get("EMBEDOPS_SEGMENT_THREADS") or 0)
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()
_REBUILD = "rebuild the index from the catalog (embedops index build)"


def new_segment_name() -> str:
    """A fresh segment name (sorts by creation time, like snapshot names)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"seg-{stamp}-{secrets.token_hex(3)}"


def legacy_segment_name(snapshot: str) -> str:
    """The name an unsegmented snapshot's one index takes when a refresh builds on it."""
    return f"seg-{snapshot}"


@dataclass(frozen=True)
class Segment:
    """One immutable index of a segmented index: local ids ``0..size-1`` map to global ids
    ``offset..offset+size-1``; ``dead`` are the tombstoned local ids (sorted, unique)."""

    name: str
    index: Index
    size: int
    offset: int = 0
    dead: IdArray = field(default_factory=lambda: np.empty(0, np.int64))

    @property
    def live(self) -> int:
        """Entries this segment can return."""
        return int(self.index.count) - len(self.dead)

    def knobs(self, tuning: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The per-call knobs this segment's backend takes (segments of one index share a
        backend, except small ones built exact)."""
        if not tuning:
            return None
        mine = {k: v for k, v in tuning.items() if k in self.index.search_knobs}
        return mine or None


_Job = tuple[Segment, "np.ndarray | None", "dict[str, Any] | None", Any]


class SegmentedIndex:
    """Several immutable segments searched as one index (read-only ``Index``).

    The fan-out runs once per call for the whole batch of queries. A graph (hnsw) segment is
    searched by one FAISS call for ``k`` live results (its tombstones skipped by a selector of
    its live labels); another segment over ``TAIL_ROWS`` entries by its own backend (fetching
    past its tombstones, more until ``k`` are live or the segment is exhausted). The small exact
    (flat) segments, the recent ones a size-tiered layout keeps, are searched together as one
    *tail*: their live rows are copied into one matrix when the index is made and scored with
    one matrix product. The best ``k`` of all are kept (in numpy), so the result is exact
    whenever each segment's search is.

    ``ef_search`` (asked for, else each graph's own) is the beam the whole index gets: a graph
    holding a share ``f`` of the live entries searches with ``ef * f ** EF_EXPONENT`` (a
    smaller graph reaches the same recall with a narrower beam), so one knob means the same
    recall over one merged index and over its segments.
    """

    def __init__(self, segments: Sequence[Segment], kind: str, metric: str, dim: int,
                 params: Any) -> None:
        offset, parts = 0, []
        for seg in segments:
            parts.append(replace(seg, offset=offset))
            offset += seg.size
        self.segments: tuple[Segment, ...] = tuple(parts)
        self._dead = [_mask(seg) for seg in parts]
        self.kind, self.metric, self.dim, self.params = kind, metric, int(dim), params
        from embedops.index import BACKENDS  # here: that package imports this module

        # the backend's knobs, even when every segment is small and exact (flat)
        own = getattr(BACKENDS.get(kind), "search_knobs", None) or {}
        self._kind_knobs: dict[str, tuple[int, int]] = dict(own)
        self._knobs = {**own, **{k: v for seg in parts for k, v in seg.index.search_knobs.items()}}
        self.size = offset
        self._tail = ExactTail.of([s for s in parts if _in_tail(s)], self.dim, metric)
        self._graphs = [(s, d, GraphLane.of(s)) for s, d in zip(parts, self._dead, strict=True)
                        if s.live > 0 and not _in_tail(s)]
        self._skips = {s.name: skip for s, _, graph in self._graphs
                       if graph is None and (skip := CellSkip.of(s)) is not None}
        self._plans: dict[Any, Plan] = {}

    @property
    def search_knobs(self) -> Mapping[str, tuple[int, int]]:
        """The knobs of the index's backend (those of any of its segments)."""
        return self._knobs

    @property
    def count(self) -> int:
        """Live entries over all segments (tombstones excluded)."""
        return sum(seg.live for seg in self.segments)

    def ids(self) -> IdArray:
        """The live global ids."""
        parts = [np.setdiff1d(seg.index.ids(), seg.dead) + seg.offset for seg in self.segments]
        return np.concatenate(parts) if parts else np.empty(0, np.int64)

    def masked(self) -> set[int]:
        """Global ids of tombstoned entries."""
        return {int(i) + seg.offset for seg in self.segments for i in seg.dead}

    def search(
        self, queries: np.ndarray, k: int, search_params: dict[str, Any] | None = None
    ) -> tuple[IdArray, F32]:
        """The ``k`` best live (global ids, scores) of each query over every segment."""
        if type(k) is not int or k < 1:
            k = check_k(k)
        if search_params and (not isinstance(search_params, Mapping)
                              or not self._knobs.keys() >= search_params.keys()):
            self.check_search_params(search_params)  # says what is wrong
        q, scale = check_queries(queries, self.dim, self.metric)
        plan = self._plan(search_params)
        if not len(q) or not (plan.lanes or plan.others):
            empty = np.empty((len(q), 0), np.int64), np.empty((len(q), 0), np.float32)
            return pad(*empty, k)
        found = None
        if not plan.lanes and len(plan.others) == 1:  # one cell segment (a folded index)
            seg, dead, knobs, params = plan.others[0]
            ids, scores, bad = _search_live(seg, dead, q, k, knobs, scale, params)
            if bad is None:  # nothing masked, best first: the segment's order is the answer
                return pad(ids + seg.offset if seg.offset else ids, scores, k)
            found = [_global(seg, ids, scores, bad)]
        pool = _executor() if FANOUT_THREADS > 1 and len(plan.lanes) > 1 else None
        dist, labels = run_lanes(plan.lanes, q, k, pool, FANOUT_THREADS)
        if self.metric == "l2":
            np.negative(dist, out=dist)  # higher is better; a missing result stays lowest
        if len(plan.lanes) == 1 and not plan.others:  # one graph, or the tail: FAISS's order
            base = int(plan.bases[0])
            return finish(labels[0] + base if base else labels[0], labels[0], dist[0], scale, k)
        others = found or [_global(seg, *_search_live(seg, dead, q, k, knobs, scale, params))
                           for seg, dead, knobs, params in plan.others]  # scaled, as merge wants
        return merge(plan, k, scale, dist, labels, others)

    def _plan(self, tuning: Mapping[str, Any] | None) -> Plan:
        """The lanes (graphs with their knobs, the tail) and the other segments (with theirs)
        for ``tuning`` (cached per tuning: a server asks with the same few)."""
        try:
            # types in the key: True == 1 and 2.0 == 2, but only ints are valid knob values
            key = tuple((n, type(v), v) for n, v in tuning.items()) if tuning else None
            plan = self._plans.get(key)
        except TypeError:  # unhashable values: the segments' checks refuse them
            key, plan = (), None
        if plan is None:
            total = max(self.count, 1)
            lanes: list[Lane] = []
            others: list[_Job] = []
            for seg, dead, graph in self._graphs:
                # each segment checks the values of its own knobs
                knobs = _checked(seg, segment_knobs(seg, tuning, seg.live / total))
                if graph is not None:
                    lanes.append(graph.lane(knobs))
                else:
                    skip = self._skips.get(seg.name)
                    params = None if skip is None else \
                        seg.index.selected_params(knobs, skip.selector)  # type: ignore[attr-defined]
                    others.append((seg, dead, knobs, params))
            if self._tail is not None:
                lanes.append(self._tail.lane())
            plan = Plan(tuple(lanes), tuple(others))
            if key != () and len(self._plans) < 64:  # bounded: values come from callers
                self._plans[key] = plan
        return plan

    def check_search_params(self, search_params: dict[str, Any] | None) -> dict[str, int]:
        """Knobs checked by the segments whose backend takes them; one no segment takes is an
        InvalidInput naming the index kind."""
        if not search_params:
            return {}
        if not isinstance(search_params, Mapping):
            raise InvalidInput("search_params must be a mapping of knob names to integers")
        out: dict[str, int] = {}
        for seg in self.segments:
            mine = {k: v for k, v in search_params.items() if k in seg.index.search_knobs}
            out.update(seg.index.check_search_params(mine) if mine else {})
        rest = {k: v for k, v in search_params.items() if k not in out}
        if rest:  # knobs no segment takes: the backend's (checked, unused) or refused
            out.update(check_search_knobs(self.kind, self._kind_knobs, rest))
        return out

    def memory_bytes(self) -> int:
        """RAM of every segment's index, plus the tail's copy of the small segments' rows."""
        tail = 0 if self._tail is None else self._tail.nbytes
        bitmaps = sum(graph.nbytes for _, _, graph in self._graphs if graph is not None) + \
            sum(skip.nbytes for skip in self._skips.values())
        return sum(int(seg.index.memory_bytes()) for seg in self.segments) + tail + bitmaps

    def describe(self) -> dict[str, Any]:
        """Kind, metric, dim, count, memory and the segments (name, entries, tombstones)."""
        return {"kind": self.kind, "metric": self.metric, "dim": self.dim, "count": self.count,
                "memory_bytes": self.memory_bytes(), "segments": summaries(self)}

    # read-only: a segment is never changed once built
    def build(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Refused: segments are immutable (refresh or merge make new ones)."""
        raise _immutable()

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Refused: segments are immutable."""
        raise _immutable()

    def upsert(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Refused: segments are immutable."""
        raise _immutable()

    def remove(self, ids: np.ndarray | list[int]) -> int:
        """Refused: segments are immutable (deletes are tombstones)."""
        raise _immutable()

    def save(self, folder: str | Path) -> None:
        """Refused: a segmented index is saved by ``SnapshotStore.publish_segments``."""
        raise _immutable()

    @classmethod
    def load(cls, folder: str | Path) -> Index:
        """Refused: a segmented index is loaded from its snapshot (``load_segments``)."""
        raise _immutable()


def _checked(seg: Segment, knobs: dict[str, Any] | None) -> dict[str, Any] | None:
    """``knobs`` as the segment's backend validates them (InvalidInput for a bad value)."""
    return seg.index.check_search_params(knobs) or None if knobs else None


def _global(seg: Segment, ids: IdArray, scores: F32, bad: np.ndarray | None
            ) -> tuple[IdArray, F32]:
    """A segment's results with global ids (-1 and ``-inf`` where masked or missing)."""
    out = ids + seg.offset
    if bad is not None:
        out[bad] = -1
        scores = np.where(bad, np.float32(-np.inf), scores)
    return out, scores


def _executor() -> ThreadPoolExecutor:
    """The pool segments are searched on (``FANOUT_THREADS``), made on first use."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(FANOUT_THREADS, thread_name_prefix="segment-search",
                                       initializer=_one_faiss_thread)
        return _POOL


def _one_faiss_thread() -> None:
    """A pool thread runs FAISS on one OpenMP thread: the pool is the parallelism. (OpenMP's
    thread count is per thread: a new thread starts at the machine's core count, whatever
    the caller set, and its idle OpenMP workers spin on the cores serving needs.)"""
    import faiss

    faiss.omp_set_num_threads(1)


def segment_knobs(seg: Segment, tuning: Mapping[str, Any] | None, share: float
                  ) -> dict[str, Any] | None:
    """The per-call knobs of one segment holding ``share`` of the index's live entries: the
    ones its backend takes, with ``ef_search`` (asked for, or the graph's own) narrowed to
    ``ef * share ** EF_EXPONENT`` (never under ``MIN_EF``)."""
    mine = {k: v for k, v in (tuning or {}).items() if k in seg.index.search_knobs}
    if "ef_search" in seg.index.search_knobs and share < 1.0:
        ef: Any = mine.get("ef_search", getattr(seg.index.params, "ef_search", None))
        if is_int(ef) and ef >= MIN_EF:  # a bad value stays as given: the backend refuses it
            mine["ef_search"] = max(MIN_EF, math.ceil(int(ef) * share ** EF_EXPONENT))
    return mine or None


def _in_tail(seg: Segment) -> bool:
    """True for a small exact segment, searched with the others in the tail's one product."""
    return seg.index.kind == "flat" and int(seg.index.count) <= TAIL_ROWS


def _mask(seg: Segment) -> np.ndarray | None:
    """``mask[id]`` True for a tombstoned local id (None when there are none)."""
    if not len(seg.dead):
        return None
    mask = np.zeros(max(seg.size, int(seg.dead.max()) + 1), dtype=bool)
    mask[seg.dead] = True
    return mask


def _search_live(seg: Segment, dead: np.ndarray | None, queries: F32, k: int,
                 knobs: dict[str, Any] | None, scale: Any = None, params: Any = None
                 ) -> tuple[IdArray, F32, np.ndarray | None]:
    """(ids, scores, masked) of one segment, fetched until every row holds ``k`` live
    results (or all the segment has): an exact segment gives its exact top ``k`` live.
    ``masked`` is None when nothing is (no tombstones, every row full). ``queries`` are
    checked (``check_queries``, whose ``scale`` they come with) and ``knobs`` validated, so a
    FAISS backend is searched below its checks (a segment is never written: no lock).
    ``params`` (a cell segment's ``CellSkip``): FAISS skips the tombstones, one call for ``k``."""
    if params is not None:
        ids, scores = seg.index.search_selected(queries, k, knobs, params)  # type: ignore[attr-defined]
        if scale is not None:
            scores *= scale
        return ids, scores, None if ids[:, -1].min() >= 0 else ids < 0
    count = int(seg.index.count)
    # about twice the tombstones expected among k results; more below when they were not enough
    fetch = min(count, k + -(-2 * k * len(seg.dead) // max(count, 1)) + 4 if len(seg.dead) else k)
    direct = getattr(seg.index, "_search", None)
    while True:
        if direct is not None:
            ids, scores = direct(queries, fetch, knobs)
            if scale is not None:
                scores *= scale
        else:
            ids, scores = seg.index.search(queries, fetch, knobs)
        if dead is None and ids[:, -1].min() >= 0:  # FAISS puts missing results last
            return ids, scores, None
        bad = ids < 0
        if dead is not None:
            bad |= dead[np.maximum(ids, 0)]
        short = (~bad).sum(axis=1) < min(k, seg.live)
        # only a row whose every slot came back can gain from a larger fetch: one with empty
        # slots got all its backend can reach (an IVF search at a low nprobe), and growing the
        # fetch for it would only grow the buffers, up to the whole segment per query
        if fetch >= count or not (short & (ids[:, -1] >= 0)).any():
            return ids, scores, bad
        fetch = min(count, fetch * 4)


def _immutable() -> InvalidInput:
    return InvalidInput("a segmented index is immutable",
                        "refresh or merge it (embedops index refresh|merge), or build a new one")


def summaries(index: SegmentedIndex) -> list[dict[str, Any]]:
    """Per segment: name, backend, entries, live entries and tombstones (for status)."""
    return [{"name": s.name, "kind": s.index.kind, "entries": int(s.index.count),
             "live": s.live, "tombstones": len(s.dead)} for s in index.segments]


# --- on disk ------------------------------------------------------------------------------------
def entries(index: SegmentedIndex) -> list[dict[str, Any]]:
    """The manifest's ``segments`` list: name, key count and tombstones of each segment."""
    return [{"name": s.name, "keys": s.size, "count": int(s.index.count),
             "tombstones": [int(i) for i in s.dead]} for s in index.segments]


def _source_files(base: dict[str, Any], segment: str) -> dict[str, str]:
    """``{path in the base snapshot: path inside the segment folder}`` of one segment of the
    base snapshot (an unsegmented base is its own one segment)."""
    files: dict[str, str] = base["files"]
    if SEGMENTS_DIR not in base:
        if segment != legacy_segment_name(str(base.get("name"))):
            raise IntegrityError(f"snapshot {base.get('name')} has no segment {segment}", _REBUILD)
        return {rel: rel for rel in files}
    prefix = f"{SEGMENTS_DIR}/{segment}/"
    found = {rel: rel[len(prefix):] for rel in files if rel.startswith(prefix)}
    if not found:
        raise IntegrityError(f"snapshot {base.get('name')} has no segment {segment}", _REBUILD)
    return found


def _link(source: Path, target: Path) -> None:
    """A hard link (a copy only where the filesystem has no hard links)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _recorded(base_folder: Path, base: dict[str, Any]) -> dict[tuple[int, int], str]:
    """The base snapshot's recorded checksums by file identity (device, inode)."""
    out: dict[tuple[int, int], str] = {}
    for rel, digest in base["files"].items():
        try:
            st = os.stat(base_folder / rel)
        except OSError:
            continue  # verification of the base reports it
        out[(st.st_dev, st.st_ino)] = digest
    return out


def _digests(folder: Path, known: dict[tuple[int, int], str]) -> dict[str, str]:
    """``sha256_tree(folder)``, except that a file hard-linked from the base snapshot (a
    folded segment's earlier vector parts) takes the checksum the base recorded: reading it
    again would cost its size, and a file damaged since would be recorded as good; as it
    is, it fails verification like the base does."""
    out: dict[str, str] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        st = path.stat()
        digest = known.get((st.st_dev, st.st_ino))
        out[path.relative_to(folder).as_posix()] = digest or sha256_file(path)
    return out


def stage(tmp: Path, base_folder: Path, base: dict[str, Any], index: SegmentedIndex,
          new_keys: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Write ``index``'s segments into the staging folder ``tmp``: the segments named in
    ``new_keys`` are saved with those keys, the others linked from ``base_folder`` (whose
    sealed manifest is ``base``). Returns the checksums of every file, for the manifest."""
    files: dict[str, str] = {}
    known: dict[tuple[int, int], str] | None = None
    for seg in index.segments:
        folder = tmp / SEGMENTS_DIR / seg.name
        prefix = f"{SEGMENTS_DIR}/{seg.name}/"
        if seg.name in new_keys:
            keys = list(new_keys[seg.name])
            if len(keys) != seg.size:
                raise InvalidInput(f"segment {seg.name} has {seg.size} entries but "
                                   f"{len(keys)} keys")
            seg.index.save(folder / INDEX_DIR)
            atomic_write_bytes(folder / KEYS, json.dumps(keys).encode())
            known = _recorded(base_folder, base) if known is None else known
            files.update({prefix + rel: digest
                          for rel, digest in _digests(folder, known).items()})
            continue
        for source, rel in _source_files(base, seg.name).items():
            _link(base_folder / source, folder / rel)
            files[prefix + rel] = base["files"][source]
    return files


def load_segments(folder: Path, manifest: dict[str, Any]) -> tuple[SegmentedIndex, list[str]]:
    """The segmented index of a verified snapshot folder, and its global keys."""
    from embedops.index import load_index, make_params

    segs, keys = [], []
    for entry in manifest[SEGMENTS_DIR]:
        name = str(entry.get("name"))
        if not SEGMENT_NAME.match(name):
            raise IntegrityError(f"the manifest of {folder.name} names a bad segment", _REBUILD)
        seg_keys = json.loads((folder / SEGMENTS_DIR / name / KEYS).read_text())
        if not isinstance(seg_keys, list) or len(seg_keys) != int(entry["keys"]):
            raise IntegrityError(f"{KEYS} of segment {name} does not match the manifest")
        index = load_index(folder / SEGMENTS_DIR / name / INDEX_DIR)
        dead = np.asarray(entry.get("tombstones") or [], dtype=np.int64)
        segs.append(Segment(name, index, len(seg_keys), dead=np.unique(dead)))
        keys.extend(seg_keys)
    params = make_params(str(manifest["backend"]), manifest.get("params") or None)
    return SegmentedIndex(segs, str(manifest["backend"]), str(manifest["metric"]),
                          int(manifest["dim"]), params), keys


def read_live_keys(folder: Path) -> list[str] | None:
    """The live item ids of a segmented snapshot folder, read without loading or verifying
    it (None when unreadable: ``verify`` reports that)."""
    try:
        manifest = json.loads((folder / "manifest.json").read_bytes())
        out: list[str] = []
        for entry in manifest[SEGMENTS_DIR]:
            name = str(entry["name"])
            if not SEGMENT_NAME.match(name):
                return None
            keys = json.loads((folder / SEGMENTS_DIR / name / KEYS).read_bytes())
            dead = {int(i) for i in entry["tombstones"]}
            out.extend(k for i, k in enumerate(keys) if i not in dead)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return out if all(isinstance(k, str) for k in out) else None


def as_segments(index: Index, size: int, snapshot: str) -> SegmentedIndex:
    """An unsegmented snapshot's index as a one-segment index (a refresh builds on it)."""
    if isinstance(index, SegmentedIndex):
        return index
    seg = Segment(legacy_segment_name(snapshot), index, size)
    return SegmentedIndex([seg], index.kind, index.metric, index.dim, index.params)
