"""The index a collection is served from: a loaded snapshot plus the writes made since.

Policy for live writes: the snapshot's index is never mutated while it is served (FAISS indexes
are not safe to change under concurrent searches). Items written after the snapshot go to a
small exact *overlay*; items deleted or rewritten are *tombstoned* in the base index and
filtered out with over-fetch. Both are replaced copy-on-write, so a search reads one consistent
state without a lock. ``index build`` folds everything into a new snapshot; ``index refresh``
seals the overlay into a new segment (``live_state`` is what it seals) and ``index merge``
folds segments together (see :mod:`embedops.index.segments`). A segmented index masks its own
tombstones (those of its manifest); the ones here are only the writes since it was loaded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embedops.index.protocol import Index
from embedops.index.segments import SegmentedIndex
from embedops.search.sync import MARGIN_S, ChangeTracker, split

#: Rebuilding is recommended once overlay + tombstones exceed this share of the base index.
REBUILD_SHARE = 0.2


def prepare(vectors: np.ndarray, metric: str) -> np.ndarray:
    """float32 copy, l2-normalized for cosine (zero rows stay zero)."""
    out = np.array(vectors, dtype=np.float32, copy=True).reshape(len(vectors), -1)
    if metric == "cosine":
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
    return out


def exact_scores(query: np.ndarray, vectors: np.ndarray, metric: str) -> np.ndarray:
    """Scores (higher is better) of one prepared query against prepared rows."""
    if len(vectors) == 0:
        return np.zeros(0, dtype=np.float32)
    dots = vectors @ query
    if metric == "l2":
        return (2 * dots - query @ query - np.einsum("ij,ij->i", vectors, vectors)).astype(
            np.float32
        )
    return dots.astype(np.float32)


def top_pairs(keys: Sequence[str], scores: np.ndarray, k: int) -> list[tuple[str, float]]:
    """The ``k`` best (key, score), best first (ties by key for determinism)."""
    if len(scores) > k:
        part = np.argpartition(-scores, k - 1)[:k]
    else:
        part = np.arange(len(scores))
    pairs = [(keys[i], float(scores[i])) for i in part]
    return sorted(pairs, key=lambda p: (-p[1], p[0]))


def catalog_position(catalog: Any, collection: str) -> dict[str, Any]:
    """Where a build starts reading the catalog: the time, and the recent changes already
    committed (their vectors will be in the build), for the served index's change tracker."""
    now = time.time()
    recent = catalog.changes_since(collection, now - MARGIN_S)
    return {"catalog_ts": now, "catalog_seen": [[i, t] for i, t, _ in recent]}


@dataclass(frozen=True)
class _Live:
    """Copy-on-write state: overlay rows and tombstoned base positions."""

    overlay_keys: tuple[str, ...] = ()
    overlay: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    tombstones: frozenset[int] = frozenset()


class ServedIndex:
    """A snapshot's index (ids = positions in ``keys``) plus overlay and tombstones.

    ``meta["catalog_ts"]`` is when the build started reading the catalog and
    ``meta["catalog_seen"]`` the ``(id, updated_at)`` changes it had seen by then (see
    ``catalog_position``), so only later writes go to the overlay.
    """

    def __init__(
        self, index: Index, keys: Sequence[str], meta: dict[str, Any], info: Any = None,
        key_pos: dict[str, int] | None = None,
    ) -> None:
        """``key_pos`` (id -> position of its live entry) may be handed over by a caller that
        derived it from the previous served index (a refresh: see ``segment_ops``); rebuilding
        it costs a pass over every key (~1.5 s at 1M)."""
        self.index = index
        self.keys = list(keys)
        # a segmented index's tombstoned entries are older copies: the live one wins
        self.masked = index.masked() if isinstance(index, SegmentedIndex) else set()
        masked = self.masked
        self.key_pos = key_pos if key_pos is not None else \
            {k: i for i, k in enumerate(self.keys) if not masked or i not in masked}
        self.meta = dict(meta)
        self.info = info
        self.metric = str(meta.get("metric", getattr(index, "metric", "cosine")))
        self.dim = int(meta.get("dim", getattr(index, "dim", 0)))
        self._live = _Live(overlay=np.zeros((0, self.dim), np.float32))
        self._lock = threading.Lock()
        seen = [(str(i), float(t)) for i, t in meta.get("catalog_seen") or []]
        self._tracker = ChangeTracker(float(meta.get("catalog_ts", 0.0)), seen)

    @property
    def model_version(self) -> str:
        return str(self.meta.get("model_version", ""))

    def sync(self, catalog: Any, collection: str, generation: int | None = None) -> None:
        """Apply catalog writes and deletes made since the snapshot (or the last sync);
        ``generation`` (see ``CatalogWatch``) skips the look when the catalog is unchanged."""
        with self._lock:
            written, deleted = split(self._tracker.poll(catalog, collection, generation))
            if not written and not deleted:
                return
            ids, vecs = catalog.load_vectors(collection, self.model_version, written) if written \
                else ([], np.zeros((0, self.dim), np.float32))
            # An item written without a vector for this version has no place in this index.
            gone = set(deleted) | (set(written) - set(ids))
            self._apply(list(ids), np.asarray(vecs), gone)

    def _apply(self, ids: list[str], vectors: np.ndarray, gone: set[str]) -> None:
        live = self._live
        touched = set(ids) | gone
        keep = [i for i, k in enumerate(live.overlay_keys) if k not in touched]
        keys = [live.overlay_keys[i] for i in keep] + ids
        rows = [live.overlay[keep]] + ([prepare(vectors, self.metric)] if ids else [])
        dead = {self.key_pos[k] for k in touched if k in self.key_pos}
        self._live = _Live(tuple(keys), np.concatenate(rows), live.tombstones | dead)

    def live_state(self) -> tuple[tuple[str, ...], np.ndarray, frozenset[int]]:
        """One consistent view of the writes since the snapshot: the overlay's keys and
        (prepared) vectors, and the tombstoned index ids."""
        live = self._live
        return live.overlay_keys, live.overlay, live.tombstones

    def live_keys(self) -> list[str]:
        """The item ids this index holds from its snapshot (tombstoned entries left out)."""
        if not self.masked:
            return self.keys
        return [k for i, k in enumerate(self.keys) if i not in self.masked]

    @property
    def pending(self) -> int:
        """Items served from the overlay (written after the snapshot)."""
        return len(self._live.overlay_keys)

    @property
    def tombstoned(self) -> int:
        """Base index entries hidden because they were deleted or rewritten."""
        return len(self._live.tombstones)

    @property
    def count(self) -> int:
        """Items this served index can return."""
        live = self._live
        return int(self.index.count) - len(live.tombstones) + len(live.overlay_keys)

    def memory_bytes(self) -> int:
        """RAM of the served index: the index structure (``Index.memory_bytes``: codes, graph,
        id map; not vectors memory-mapped for rescoring) plus the overlay's rows."""
        return int(self.index.memory_bytes()) + int(self._live.overlay.nbytes)

    def rebuild_recommended(self) -> bool:
        """True when live writes are large enough that a new snapshot would be faster."""
        return self.pending + self.tombstoned > REBUILD_SHARE * max(int(self.index.count), 1)

    def search(
        self,
        query: np.ndarray,
        k: int,
        accept: Callable[[str], bool] | None = None,
        fetch: int | None = None,
        search_params: dict[str, Any] | None = None,
    ) -> list[tuple[str, float]]:
        """Top ``k`` (key, score) among items passing ``accept`` (post-filter with adaptive
        over-fetch: starting from ``fetch`` candidates, the fetch grows until ``k`` pass or the
        index is exhausted). ``search_params`` go to the index (``Index.search``)."""
        live = self._live
        if accept is None and fetch is None and not live.overlay_keys and not live.tombstones \
                and type(k) is int and k > 0:
            found = self._index_only(query, k, search_params)
            if found is not None:
                return found
        q = prepare(query.reshape(1, -1), self.metric)[0]
        over = exact_scores(q, live.overlay, self.metric)
        pairs = [p for p in zip(live.overlay_keys, over.tolist(), strict=True)
                 if accept is None or accept(p[0])]
        total = int(self.index.count)
        # Without a filter only tombstones can drop candidates, and they are added below; with
        # one, start wider (the loop still grows the fetch until k pass).
        default = k if accept is None else 4 * k + 16
        fetch = min(total, max(fetch or default, k) + len(live.tombstones))
        base: list[tuple[str, float]] = []
        while fetch > 0:
            base = self._base(q, fetch, live.tombstones, accept, search_params)
            if len(base) >= k or fetch >= total:
                break
            fetch = min(total, fetch * 4)
        return top_pairs([p[0] for p in pairs + base], np.array([p[1] for p in pairs + base],
                                                                np.float32), k)

    def _index_only(self, query: np.ndarray, k: int, search_params: dict[str, Any] | None
                    ) -> list[tuple[str, float]] | None:
        """``search`` where the index alone answers (no overlay, no tombstones, no filter: a
        served snapshot between writes): the query goes to the index as given (it checks it,
        and scales cosine scores by the query's norm itself), the results in its order unless
        two scores tie (then by key, as ``top_pairs`` orders them). None when the index gave
        fewer than ``k`` and holds more (an IVF search at a low ``nprobe``): the general path
        fetches further."""
        total = int(self.index.count)
        if not total:
            return []
        ids, scores = self.index.search(np.reshape(query, (1, -1)), min(total, k), search_params)
        keys = self.keys
        found = [(keys[i], s) for i, s in zip(ids[0].tolist(), scores[0].tolist(), strict=True)
                 if i >= 0]
        if len(found) < min(total, k):
            return None
        if any(a[1] <= b[1] for a, b in zip(found, found[1:], strict=False)):  # ties: by key
            return top_pairs([p[0] for p in found], np.array([p[1] for p in found], np.float32), k)
        return found

    def _base(
        self, q: np.ndarray, fetch: int, dead: frozenset[int], accept: Callable[[str], bool] | None,
        search_params: dict[str, Any] | None = None,
    ) -> list[tuple[str, float]]:
        ids, scores = self.index.search(q.reshape(1, -1), fetch, search_params)
        out = []
        for i, s in zip(ids[0].tolist(), scores[0].tolist(), strict=True):
            if i < 0 or i in dead:
                continue
            key = self.keys[i]
            if accept is None or accept(key):
                out.append((key, s))
        return out
