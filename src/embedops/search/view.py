"""The live items of a collection held in memory for lexical search and metadata filters.

Policy (kept in step with upserts and deletes): before each use the view polls the catalog's
changes (``ChangeTracker``). Items live in numbered slots, append-only: a delete masks its slot,
a write masks the item's old slot (if any) and appends the new text and metadata in a fresh
one, read from the catalog for the written ids only. BM25 (``IncrementalLexical``) is built on
the first lexical query, so a dense search with filters does not pay for it; after that each
write updates its statistics in time proportional to the write, and the texts are no longer
kept (at 1M documents they were a few hundred MB per server worker). When dead slots outnumber the
live ones the view reloads itself from the catalog (amortised over as many writes).

Readers never take the lock: each sees one ``_State`` (the slot count and the deletion mask,
replaced as a whole on each write). The slot lists are only appended to, so entries below a
state's count never change under it.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from embedops.search.filters import Filter
from embedops.search.lexical import IncrementalLexical, LexicalConfig
from embedops.search.sync import ChangeTracker, split

# reload from the catalog when dead slots exceed live ones and this many
_COMPACT_MIN = 1024
# one shared (never mutated) mapping for the items without metadata: 1M empty dicts cost 64 MB
_NO_METADATA: dict[str, Any] = {}


@dataclass(frozen=True)
class _State:
    ids: list[str]  # per slot, append-only (shared between states)
    texts: list[str]  # per slot until BM25 is built from them; then no longer kept
    metadata: list[dict[str, Any]]
    alive: np.ndarray  # per slot of this state; its length is the state's slot count
    lexical: IncrementalLexical | None = None


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
            metas.append(item.metadata or _NO_METADATA)
            stamps.append((item.id, item.updated_at))
        self._pos = {i: n for n, i in enumerate(ids)}  # live id -> slot (writers only)
        self._state = _State(ids, texts, metas, np.ones(len(ids), dtype=bool))
        self._tracker = ChangeTracker(started, stamps)

    def sync(self, generation: int | None = None) -> None:
        """Apply catalog changes made since the last look (see the module docstring);
        ``generation`` (see ``CatalogWatch``) skips the look when the catalog is unchanged."""
        with self._lock:
            written, deleted = split(self._tracker.poll(self.catalog, self.collection,
                                                        generation))
            if not written and not deleted:
                return
            items = self.catalog.get_items(self.collection, written) if written else []
            state = self._state
            gone = set(deleted) | (set(written) - {item.id for item in items})
            dead = [self._pos.pop(i) for i in itertools.chain(gone, (x.id for x in items))
                    if i in self._pos]  # fmt: skip
            start = len(state.alive)
            for n, item in enumerate(items):
                state.ids.append(item.id)
                if state.lexical is None:
                    state.texts.append(item.text)
                state.metadata.append(item.metadata or _NO_METADATA)
                self._pos[item.id] = start + n
            alive = np.concatenate([state.alive, np.ones(len(items), dtype=bool)])
            alive[dead] = False
            if state.lexical is not None:
                state.lexical.delete(dead)
                state.lexical.add(list(range(start, len(alive))), [x.text for x in items])
            self._state = replace(state, alive=alive)
            if len(alive) - len(self._pos) > max(len(self._pos), _COMPACT_MIN):
                self._load()

    @property
    def count(self) -> int:
        """Live items in the view."""
        return int(self._state.alive.sum())

    @staticmethod
    def _mask(state: _State, filt: Filter | None) -> np.ndarray:
        if not filt:
            return state.alive.copy()
        n = len(state.alive)
        metas = itertools.islice(state.metadata, n)
        keep = np.fromiter((filt.matches(m) for m in metas), bool, n)
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
                state = self._state
                if state.lexical is None:
                    index = IncrementalLexical(self.config)
                    live = np.flatnonzero(state.alive).tolist()
                    index.add(live, [state.texts[i] for i in live])
                    # the texts live on in BM25's statistics (and in the catalog): not kept
                    state = self._state = replace(state, lexical=index, texts=[])
        assert state.lexical is not None
        hits = state.lexical.search(query, k, self._mask(state, filt))
        return [(state.ids[p], s) for p, s in hits]
