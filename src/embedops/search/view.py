"""The live items of a collection held in memory for lexical search and metadata filters.

Policy (kept in step with upserts and deletes): before each use the view polls the catalog's
changes. A delete is masked at once (a deleted item is never returned); a write marks the view
stale, and the next use re-reads the items and rebuilds BM25 lazily. The BM25 index is built on
the first lexical query, so a dense search with filters does not pay for it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from embedops.search.filters import Filter
from embedops.search.lexical import LexicalConfig, LexicalIndex
from embedops.search.sync import ChangeTracker, split


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
        self.ids, self.texts, self.metadata = ids, texts, metas
        self.pos = {i: n for n, i in enumerate(ids)}
        self.alive = np.ones(len(ids), dtype=bool)
        self._lexical: LexicalIndex | None = None
        self._stale = False
        self._tracker = ChangeTracker(started, stamps)

    def sync(self) -> None:
        """Apply catalog changes made since the last look (see the module docstring)."""
        with self._lock:
            written, deleted = split(self._tracker.poll(self.catalog, self.collection))
            for item_id in deleted:
                if item_id in self.pos:
                    self.alive[self.pos[item_id]] = False
            if written:
                self._stale = True
            if self._stale:
                self._load()

    @property
    def count(self) -> int:
        """Live items in the view."""
        return int(self.alive.sum())

    def mask(self, filt: Filter | None) -> np.ndarray:
        """Boolean mask over positions: live and passing ``filt``."""
        if not filt:
            return self.alive.copy()
        keep = np.fromiter((filt.matches(m) for m in self.metadata), bool, len(self.metadata))
        return keep & self.alive

    def matching(self, filt: Filter | None) -> list[str]:
        """Ids of live items passing ``filt``."""
        return [self.ids[i] for i in np.flatnonzero(self.mask(filt))]

    def passes(self, item_id: str, filt: Filter) -> bool:
        """True when ``item_id`` is live and its metadata passes ``filt``."""
        pos = self.pos.get(item_id)
        return pos is not None and bool(self.alive[pos]) and filt.matches(self.metadata[pos])

    def lexical(self, query: str, k: int, filt: Filter | None = None) -> list[tuple[str, float]]:
        """Top ``k`` (id, BM25 score) among live items passing ``filt``, best first."""
        with self._lock:
            if self._lexical is None:
                self._lexical = LexicalIndex(self.ids, self.texts, self.config)
            hits = self._lexical.search(query, k, self.mask(filt))
        return [(self.ids[p], s) for p, s in hits]

    def record(self, item_id: str) -> tuple[str, dict[str, Any]] | None:
        """(text, metadata) of a live item, or None."""
        pos = self.pos.get(item_id)
        if pos is None or not self.alive[pos]:
            return None
        return self.texts[pos], self.metadata[pos]
