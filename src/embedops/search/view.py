"""The live items of a collection held in memory for lexical search and metadata filters.

Policy (kept in step with upserts and deletes): before each use the view polls the catalog's
changes. A delete is masked at once (a deleted item is never returned); a write marks the view
stale, and the next use re-reads the items and rebuilds BM25 lazily. The BM25 index is built on
the first lexical query, so a dense search with filters does not pay for it. The state is
replaced as a whole (copy-on-write), so readers on other threads always see one consistent
snapshot of ids, texts, metadata and the deletion mask.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from embedops.search.filters import Filter
from embedops.search.lexical import LexicalConfig, LexicalIndex
from embedops.search.sync import ChangeTracker, split


@dataclass(frozen=True)
class _State:
    ids: list[str]
    texts: list[str]
    metadata: list[dict[str, Any]]
    pos: dict[str, int]
    alive: np.ndarray
    lexical: LexicalIndex | None = None


class CollectionView:
    """Ids, texts and metadata of the live items of ``collection``, with BM25 on demand."""

    def __init__(self, catalog: Any, collection: str, config: LexicalConfig | None = None) -> None:
        self.catalog = catalog
        self.collection = collection
        self.config = config or LexicalConfig()
        self._lock = threading.RLock()
        self._load()

    def _load(self) -> None:
        started = time.time()
        ids, texts, metas, stamps = [], [], [], []
        for item in self.catalog.iter_items(self.collection):
            ids.append(item.id)
            texts.append(item.text)
            metas.append(item.metadata)
            stamps.append((item.id, item.updated_at))
        pos = {i: n for n, i in enumerate(ids)}
        self._state = _State(ids, texts, metas, pos, np.ones(len(ids), dtype=bool))
        self._tracker = ChangeTracker(started, stamps)

    def sync(self, generation: int | None = None) -> None:
        """Apply catalog changes made since the last look (see the module docstring);
        ``generation`` (see ``CatalogWatch``) skips the look when the catalog is unchanged."""
        with self._lock:
            written, deleted = split(self._tracker.poll(self.catalog, self.collection,
                                                        generation))
            if written:
                self._load()
                return
            state = self._state
            dead = [state.pos[i] for i in deleted if i in state.pos]
            if dead:
                alive = state.alive.copy()
                alive[dead] = False
                self._state = replace(state, alive=alive)

    @property
    def count(self) -> int:
        """Live items in the view."""
        return int(self._state.alive.sum())

    @staticmethod
    def _mask(state: _State, filt: Filter | None) -> np.ndarray:
        if not filt:
            return state.alive.copy()
        keep = np.fromiter((filt.matches(m) for m in state.metadata), bool, len(state.metadata))
        return keep & state.alive

    def matching(self, filt: Filter | None) -> list[str]:
        """Ids of live items passing ``filt``."""
        state = self._state
        return [state.ids[i] for i in np.flatnonzero(self._mask(state, filt))]

    def lexical(self, query: str, k: int, filt: Filter | None = None) -> list[tuple[str, float]]:
        """Top ``k`` (id, BM25 score) among live items passing ``filt``, best first."""
        state = self._state
        if state.lexical is None:
            with self._lock:
                if self._state.lexical is None:
                    index = LexicalIndex(self._state.ids, self._state.texts, self.config)
                    self._state = replace(self._state, lexical=index)
                state = self._state
        assert state.lexical is not None
        hits = state.lexical.search(query, k, self._mask(state, filt))
        return [(state.ids[p], s) for p, s in hits]
