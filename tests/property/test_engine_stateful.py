"""A live collection driven through every write path, checked after each step against a
brute-force model of what search must find (hypothesis ``RuleBasedStateMachine``).

Writes: facade ``upsert_items`` / ``delete_items`` / ``ingest`` and the CLI ``embedops ingest``
(both with deletes in the file). Configuration: two-stage with a second static model (or the
collection's own index), a rollout to a third static model (start, backfill, abort), index
builds (flat, hnsw) of every version in use, and index rollbacks.

Texts are built so that search is deterministic: every id owns one word no other item uses, and
adds two distinct shared words. The item whose text is the query is then the only one with
cosine 1 (mean of random word vectors) and the only one with all three BM25 terms, so it must be
the top hit in every mode, and lexical search must return exactly the items sharing a word.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from embedops.api import Embedops
from embedops.cli.main import main
from embedops.config import HOME_ENV, Workspace
from embedops.errors import NotFound
from embedops.lifecycle import Rollouts
from embedops.models.registry import Registry
from embedops.models.static import StaticVectors, publish_static
from embedops.text.tokenize import TokenizerSpec

COLLECTION = "live"
IDS = [f"i{n}" for n in range(8)]
OWN = dict(zip(IDS, "apple harbour violin glacier copper lantern meadow falcon".split(),
               strict=True))
SHARED = ("orchid tunnel saddle pepper canyon marble beetle ribbon walrus cobalt "
          "thistle quartz").split()
#: name -> dim of the static models: the collection's, the two-stage cheap one, the rollout's.
MODELS = {"main": 16, "cheap": 8, "next": 12}
MODES = ("dense", "lexical", "hybrid", "two_stage")
WRITES = ("upsert", "cli", "facade")

#: Workspaces on tmpfs where there is one: snapshots and the catalog fsync every write.
SCRATCH = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
#: One bug reported (and shrunk) at a time: shrinking several distinct failures takes minutes.
SETTINGS = settings(max_examples=30, stateful_step_count=15, deadline=None,
                    report_multiple_bugs=False, suppress_health_check=[HealthCheck.too_slow])


def _text(item_id: str) -> st.SearchStrategy[str]:
    """Text of ``item_id``: its own word and two shared words, in any order."""
    return st.tuples(
        st.lists(st.sampled_from(SHARED), min_size=2, max_size=2, unique=True),
        st.permutations([0, 1, 2]),
    ).map(lambda drawn: " ".join([OWN[item_id], *drawn[0]][i] for i in drawn[1]))


#: ``{id: text}`` to write in one call (unique ids, so "last one wins" needs no modelling).
records = st.lists(st.sampled_from(IDS), min_size=1, max_size=4, unique=True).flatmap(
    lambda ids: st.fixed_dictionaries({i: _text(i) for i in ids}))
deletions = st.lists(st.sampled_from(IDS), max_size=2, unique=True)


@pytest.fixture(scope="module")
def models_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace holding only the three static models (copied into each example's own)."""
    ws = Workspace(tmp_path_factory.mktemp("models") / "ws").ensure()
    registry, vocab = Registry(ws), [*OWN.values(), *SHARED]
    for name, dim in MODELS.items():
        rng = np.random.default_rng(dim)
        table = StaticVectors(vocab, rng.standard_normal((len(vocab), dim)).astype(np.float32))
        publish_static(registry, name, table, kind="static", spec=TokenizerSpec())
    return ws.home


class LiveCollection(RuleBasedStateMachine):
    """One collection on ``main@1``; ``self.items`` is what must be found."""

    def __init__(self, models_home: Path) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="eo-stateful-", dir=SCRATCH))
        self.home = self.tmp / "ws"
        shutil.copytree(models_home, self.home)
        self.eo = Embedops(Workspace(self.home))
        self.items: dict[str, str] = {}  # the live items, id -> text
        self.seen: set[str] = set()  # every id ever written (so the deleted ones are known)
        self.cheap: str | None = None
        self.candidates = 100
        self.rollout: str | None = None  # phase: "backfilling" or "canary"
        self.files = 0

    def teardown(self) -> None:
        self.eo.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    @initialize(cheap=st.sampled_from([None, "cheap"]), via=st.sampled_from(WRITES),
                rows=records)
    def create(self, cheap: str | None, via: str, rows: dict[str, str]) -> None:
        """The collection, maybe two-stage with the cheap model, and a first write."""
        self.eo.collections.create(COLLECTION, model="main")
        if cheap:
            self.configure_two_stage(cheap, 100)
        if via == "upsert":
            self.upsert(rows)
        else:
            self.ingest(via, rows, [])

    # -- writes ---------------------------------------------------------------------------------
    def _written(self, rows: dict[str, str], deleted: Iterable[str] = ()) -> None:
        self.items.update(rows)
        self.seen.update(rows)
        for item_id in deleted:
            self.items.pop(item_id, None)

    @rule(rows=records)
    def upsert(self, rows: dict[str, str]) -> None:
        report = self.eo.upsert_items(COLLECTION, [{"id": i, "text": t} for i, t in rows.items()])
        changed = sum(self.items.get(i) != t for i, t in rows.items())
        assert (report["received"], report["written"]) == (len(rows), changed)
        self._written(rows)

    @rule(ids=st.lists(st.sampled_from(IDS), min_size=1, max_size=2, unique=True))
    def delete(self, ids: list[str]) -> None:
        assert self.eo.delete_items(COLLECTION, ids) == len(set(ids) & set(self.items))
        self._written({}, ids)

    def _file(self, rows: dict[str, str], deleted: list[str]) -> Path:
        self.files += 1
        path = self.tmp / f"batch{self.files}.jsonl"
        lines = [{"id": i, "text": t} for i, t in rows.items() if i not in deleted]
        lines += [{"id": i, "gone": True} for i in deleted]
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
        return path

    @rule(via=st.sampled_from(WRITES[1:]), rows=records, deleted=deletions)
    def ingest(self, via: str, rows: dict[str, str], deleted: list[str]) -> None:
        """A JSONL file through ``embedops ingest`` or ``Embedops.ingest`` (same records)."""
        path = self._file(rows, deleted)
        if via == "cli":
            argv = ["--home", str(self.home), "ingest", COLLECTION, str(path),
                    "--delete-field", "gone"]
            assert main(argv) == 0
        else:
            report = self.eo.ingest(COLLECTION, path, delete_field="gone", quiet=True)
            assert report.failed_lines == []
        self._written({i: t for i, t in rows.items() if i not in deleted}, deleted)

    # -- configuration --------------------------------------------------------------------------
    @rule(cheap=st.sampled_from([None, "cheap"]), candidates=st.sampled_from([1, 2, 100]))
    def configure_two_stage(self, cheap: str | None, candidates: int) -> None:
        config = self.eo.configure_two_stage(COLLECTION, cheap_model=cheap, candidates=candidates)
        assert config.cheap_model == (cheap and f"{cheap}@1")
        self.cheap, self.candidates = config.cheap_model, candidates

    @precondition(lambda self: self.rollout is None)
    @rule(backfill=st.booleans())
    def start_rollout(self, backfill: bool) -> None:
        state = Rollouts(self.eo, who="stateful-test").start(COLLECTION, "next")
        assert (state.phase, state.candidate) == ("backfilling", "next@1")
        self.rollout = state.phase
        if backfill:
            self.backfill_rollout()

    # Also on an empty collection (its candidate index is then built empty, of the last kind).
    @precondition(lambda self: self.rollout == "backfilling")
    @rule()
    def backfill_rollout(self) -> None:
        state = Rollouts(self.eo, who="stateful-test").run_backfill(COLLECTION, quiet=True)
        assert state.phase == "canary"
        self.rollout = state.phase

    @precondition(lambda self: self.rollout is not None)
    @rule()
    def abort_rollout(self) -> None:
        assert Rollouts(self.eo, who="stateful-test").abort(COLLECTION).phase == "aborted"
        self.rollout = None

    def _versions(self) -> list[str]:
        return ["main@1", *([self.cheap] if self.cheap else []),
                *(["next@1"] if self.rollout == "canary" else [])]

    @rule(kind=st.sampled_from(["flat", "hnsw"]), data=st.data())
    def build_index(self, kind: str, data: st.DataObject) -> None:
        version = data.draw(st.sampled_from(self._versions()), label="version")
        if kind == "hnsw" and not self.items:
            return  # nothing to build an approximate index from (refused, by design)
        summary = self.eo.build_index(COLLECTION, kind, model_version=version, quiet=True)
        assert summary["count"] == len(self.items)

    @rule()
    def rollback_index(self) -> None:
        try:
            self.eo.rollback_index(COLLECTION)
        except NotFound:
            pass  # no older snapshot: nothing to swap back to

    # -- what must be found ---------------------------------------------------------------------
    def _hits(self, query: str, mode: str, k: int, **options: Any) -> list[str]:
        hits = [h.id for h in self.eo.search(COLLECTION, query, k=k, mode=mode, **options).hits]
        where = f"{mode} search for {query!r} (k={k}, {options})"
        assert not set(hits) & (self.seen - set(self.items)), f"{where} returned deleted {hits}"
        assert set(hits) <= set(self.items), f"{where} returned unknown ids {hits}"
        assert len(hits) == len(set(hits)), f"{where} returned an id twice: {hits}"
        return hits

    def _sharing(self, text: str) -> set[str]:
        words = set(text.split())
        return {i for i, t in self.items.items() if words & set(t.split())}

    @invariant()
    def counts_match(self) -> None:
        shown = self.eo.collections.show(COLLECTION)
        assert shown["item_count"] == len(self.items)
        assert shown["vectors"].get("main@1", 0) == len(self.items)
        assert self.eo.index_status(COLLECTION)["items"] == len(self.items)

    @invariant()
    def every_item_is_found_by_its_own_text(self) -> None:
        n = len(self.items)
        for item_id, text in sorted(self.items.items()):
            for mode in MODES:
                hits = self._hits(text, mode, n)
                assert hits[:1] == [item_id], f"{mode}: {item_id} ({text!r}) not first: {hits}"
                expected = self._sharing(text) if mode == "lexical" else set(self.items)
                assert set(hits) == expected, f"{mode} search for {text!r}: {hits}"
            top = self._hits(text, "two_stage", 1)
            assert top == [item_id], (
                f"two_stage (cheap {self.cheap}, {self.candidates} candidates, k=1) missed "
                f"{item_id} ({text!r}): {top}")
            if self.rollout == "canary":
                hits = self._hits(text, "dense", n, model_version="next@1")
                assert hits[:1] == [item_id] and set(hits) == set(self.items), hits


@pytest.mark.slow
def test_live_collection_finds_what_it_holds(
    models_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HOME_ENV, os.fspath(models_home))  # restored: ``--home`` overwrites it
    monkeypatch.setenv("EMBEDOPS_QUIET", "1")
    run_state_machine_as_test(lambda: LiveCollection(models_home), settings=SETTINGS)
