"""Incremental BM25 after random upserts and deletes scores exactly like BM25 built from scratch
on the same live documents (bm25s, ``LexicalIndex``), for every BM25 variant."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedops.errors import InvalidInput
from embedops.search.lexical import IncrementalLexical, LexicalConfig, LexicalIndex

WORDS = ["cat", "cats", "dog", "running", "runs", "the", "a", "bird", "fish", "swimming",
         "house", "houses", "red", "blue", "is", "and", "sky", "water"]
QUERIES = ["cat", "running dog", "the red house", "fish fish swim", "blue sky and water", "zebra"]

texts = st.lists(st.sampled_from(WORDS), min_size=0, max_size=8).map(" ".join)
ops = st.lists(
    st.tuples(st.sampled_from(["upsert", "delete"]), st.integers(0, 12), texts),
    min_size=1, max_size=40,
)
configs = st.builds(
    LexicalConfig,
    k1=st.sampled_from([0.9, 1.2, 2.0]),
    b=st.sampled_from([0.0, 0.5, 0.75, 1.0]),
    method=st.sampled_from(["lucene", "robertson", "atire", "bm25l", "bm25+"]),
    stopwords=st.sampled_from(["en", None]),
    stemmer=st.sampled_from(["english", None]),
)


@settings(max_examples=60, deadline=None)
@given(ops=ops, config=configs)
def test_incremental_equals_rebuilt(ops: list[tuple[str, int, str]], config: LexicalConfig):
    index = IncrementalLexical(config)
    slot_of: dict[int, int] = {}  # document key -> its current slot (an upsert takes a new one)
    text_of: dict[int, str] = {}
    next_slot = 0
    for op, key, text in ops:
        if key in slot_of:
            index.delete([slot_of.pop(key)])
            text_of.pop(key)
        if op == "upsert":
            index.add([next_slot], [text])
            slot_of[key], text_of[key] = next_slot, text
            next_slot += 1
    keys = sorted(slot_of)
    assert len(index) == len(keys)
    if not any(index.tokenize([text_of[k] for k in keys])):  # bm25s cannot index no tokens
        assert not any(index.scores(q, next_slot).any() for q in QUERIES)
        return
    fresh = LexicalIndex([str(k) for k in keys], [text_of[k] for k in keys], config)
    for query in QUERIES:
        got = index.scores(query, next_slot)
        want = fresh.scores(query)
        live = np.array([slot_of[k] for k in keys], dtype=np.int64)
        np.testing.assert_allclose(got[live], want, rtol=1e-5, atol=1e-5)
        dead = np.setdiff1d(np.arange(next_slot), live)
        assert not got[dead].any()


def test_compaction_keeps_scores():
    index = IncrementalLexical()
    n = 3000
    index.add(list(range(n)), [f"word{i % 50} common text {i}" for i in range(n)])
    index.delete(list(range(0, n, 1)))  # everything: forces a compaction
    index.add([n, n + 1], ["common words here", "another text"])
    fresh = LexicalIndex(["a", "b"], ["common words here", "another text"])
    np.testing.assert_allclose(index.scores("common text", n + 2)[n:], fresh.scores("common text"),
                               rtol=1e-5)
    assert index._dead_postings == 0


@settings(max_examples=60, deadline=None)
@given(docs=st.lists(texts, min_size=1, max_size=30), cut=st.integers(0, 30),
       dead=st.sets(st.integers(0, 29)), config=configs)
def test_adding_many_at_once_equals_one_at_a_time(docs: list[str], cut: int, dead: set[int],
                                                   config: LexicalConfig):
    """The batched add (terms numbered in one pass, postings grown per term) scores like adds of
    one document each, before and after deletes, however the documents are split into calls."""
    batched, single = IncrementalLexical(config), IncrementalLexical(config)
    cut = min(cut, len(docs))
    batched.add(list(range(cut)), docs[:cut])
    batched.add(list(range(cut, len(docs))), docs[cut:])
    for slot, text in enumerate(docs):
        single.add([slot], [text])
    for stage in range(2):
        for query in QUERIES:
            np.testing.assert_allclose(batched.scores(query, len(docs)),
                                       single.scores(query, len(docs)), rtol=1e-6, atol=1e-6)
        gone = [s for s in sorted(dead) if s < len(docs)]
        if stage == 0:
            assert batched.delete(gone) == single.delete(gone) == len(gone)
    with pytest.raises(InvalidInput, match="already in use"):  # twice in one call
        batched.add([len(docs), len(docs)], ["cat", "dog"])
    live = [s for s in range(len(docs)) if s not in dead]
    if live:
        with pytest.raises(InvalidInput, match="already in use"):  # a live slot
            batched.add([len(docs), live[0]], ["cat", "dog"])
