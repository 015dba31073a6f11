"""CollectionView keeps BM25 in step with writes incrementally: after upserts and deletes its
lexical results equal those of BM25 built from scratch on the live items."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from embedops.search.lexical import LexicalIndex
from embedops.search.view import CollectionView


@dataclass
class _Item:
    id: str
    text: str
    metadata: dict[str, Any]
    updated_at: float


@dataclass
class FakeCatalog:
    """The four catalog reads the view makes, over a dict (deletes kept as tombstones)."""

    items: dict[str, _Item] = field(default_factory=dict)
    deleted: dict[str, float] = field(default_factory=dict)
    clock: float = field(default_factory=time.time)

    def _tick(self) -> float:
        self.clock += 0.001
        return self.clock

    def upsert(self, item_id: str, text: str, **meta: Any) -> None:
        self.deleted.pop(item_id, None)
        self.items.pop(item_id, None)  # re-inserted last, as a changed row is re-read
        self.items[item_id] = _Item(item_id, text, meta, self._tick())

    def delete(self, item_id: str) -> None:
        if self.items.pop(item_id, None) is not None:
            self.deleted[item_id] = self._tick()

    def iter_items(self, collection: str) -> list[_Item]:
        return list(self.items.values())

    def get_items(self, collection: str, ids: list[str]) -> list[_Item]:
        return [self.items[i] for i in ids if i in self.items]

    def changes_since(self, collection: str, ts: float) -> list[tuple[str, float, bool]]:
        rows = [(i.id, i.updated_at, False) for i in self.items.values() if i.updated_at > ts]
        rows += [(i, t, True) for i, t in self.deleted.items() if t > ts]
        return sorted(rows, key=lambda r: r[1])


def _fresh(catalog: FakeCatalog, query: str, k: int) -> list[tuple[str, float]]:
    items = list(catalog.items.values())
    index = LexicalIndex([i.id for i in items], [i.text for i in items])
    return [(items[p].id, s) for p, s in index.search(query, k)]


def _same(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> None:
    assert dict(got) == pytest.approx(dict(want), rel=1e-5)


def test_writes_update_bm25_without_a_rebuild():
    catalog = FakeCatalog()
    for n in range(50):
        catalog.upsert(f"d{n}", f"the red fox number {n} jumps over dog {n % 7}", group=n % 3)
    view = CollectionView(catalog, "c")
    _same(view.lexical("red fox dog", 100), _fresh(catalog, "red fox dog", 100))
    lexical = view._state.lexical
    catalog.upsert("d3", "a blue whale swims")
    catalog.upsert("new", "blue whales and red foxes")
    catalog.delete("d4")
    catalog.delete("missing")
    view.sync()
    assert view._state.lexical is lexical  # updated in place, not rebuilt
    assert view.count == len(catalog.items) == 50
    for query in ("blue whale", "red fox dog", "number 4"):
        _same(view.lexical(query, 100), _fresh(catalog, query, 100))
    assert "d4" not in dict(view.lexical("number 4", 100))
    assert sorted(view.matching(None)) == sorted(catalog.items)


def test_filters_see_the_latest_metadata():
    from embedops.search.filters import compile_filters

    catalog = FakeCatalog()
    catalog.upsert("a", "apple pie", tag="x")
    catalog.upsert("b", "apple tart", tag="y")
    view = CollectionView(catalog, "c")
    view.lexical("apple", 5)
    catalog.upsert("a", "apple crumble", tag="y")
    view.sync()
    filt = compile_filters({"tag": "y"})
    assert sorted(view.matching(filt)) == ["a", "b"]
    assert {i for i, _ in view.lexical("apple", 5, filt)} == {"a", "b"}


def test_many_dead_slots_reload_the_view():
    catalog = FakeCatalog()
    for n in range(10):
        catalog.upsert(f"d{n}", f"text {n}")
    view = CollectionView(catalog, "c")
    view.lexical("text", 5)
    for round_ in range(300):
        for n in range(10):
            catalog.upsert(f"d{n}", f"text {n} round {round_}")
        view.sync()
    assert len(view._state.alive) < 2100  # reloaded at least once
    _same(view.lexical("round 299", 10), _fresh(catalog, "round 299", 10))
