"""Reciprocal rank fusion and BM25 over real text (gensim's Lee corpus)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedops.errors import InvalidInput
from embedops.search.hybrid import hybrid_fuse, rrf
from embedops.search.lexical import LexicalConfig, LexicalIndex, top_positive


def test_rrf_rewards_agreement() -> None:
    fused = rrf([["a", "b", "c"], ["b", "d", "a"]])
    assert [d for d, _ in fused][:2] == ["b", "a"]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)


def test_rrf_weights_and_limit() -> None:
    dense, lexical = ["a", "b"], ["c", "d"]
    assert hybrid_fuse(dense, lexical, 1.0, 10) == rrf([dense], [1.0])
    assert [d for d, _ in hybrid_fuse(dense, lexical, 0.0, 10)] == ["c", "d"]
    assert [d for d, _ in hybrid_fuse(dense, lexical, 0.7, 1)] == ["a"]
    assert [d for d, _ in hybrid_fuse(dense, lexical, 0.3, 1)] == ["c"]


@pytest.mark.parametrize("weight", [-0.1, 1.5, "x"])
def test_bad_weight(weight: object) -> None:
    with pytest.raises(InvalidInput):
        hybrid_fuse(["a"], ["b"], weight, 5)  # type: ignore[arg-type]


def test_rrf_bad_shapes() -> None:
    with pytest.raises(InvalidInput):
        rrf([["a"]], [1.0, 2.0])
    with pytest.raises(InvalidInput):
        rrf([["a"]], k=0)


def test_top_positive_skips_zero_and_orders() -> None:
    scores = np.array([0.0, 2.0, 5.0, 2.0, -1.0], dtype=np.float32)
    assert top_positive(scores, 10) == [(2, 5.0), (1, 2.0), (3, 2.0)]
    assert top_positive(scores, 1) == [(2, 5.0)]


@pytest.fixture(scope="module")
def lee_docs(lee_corpus: Path) -> list[str]:
    text = lee_corpus.read_text(errors="replace")
    return [line.strip() for line in text.splitlines() if line.strip()]


def test_bm25_finds_the_document_a_query_is_taken_from(lee_docs: list[str]) -> None:
    ids = [f"d{i}" for i in range(len(lee_docs))]
    index = LexicalIndex(ids, lee_docs)
    found = 0
    for i in range(0, len(lee_docs), 25):
        words = lee_docs[i].split()
        query = " ".join(words[len(words) // 3 : len(words) // 3 + 8])
        found += any(pos == i for pos, _ in index.search(query, 3))
    assert found >= 0.8 * len(range(0, len(lee_docs), 25))


def test_bm25_mask_stopwords_and_unknown_terms(lee_docs: list[str]) -> None:
    index = LexicalIndex([str(i) for i in range(len(lee_docs))], lee_docs)
    hits = index.search("hundreds of bushfires", 5)
    assert hits
    allowed = np.ones(len(lee_docs), dtype=bool)
    allowed[hits[0][0]] = False
    assert hits[0][0] not in [p for p, _ in index.search("hundreds of bushfires", 5, allowed)]
    assert index.search("the of and", 5) == []
    assert index.search("zzqxv", 5) == []
    assert index.search("", 5) == []


def test_stemming_matches_inflections() -> None:
    docs = ["the runner was running fast", "a quiet library"]
    assert [p for p, _ in LexicalIndex(["a", "b"], docs).search("runs", 5)] == [0]
    plain = LexicalIndex(["a", "b"], docs, LexicalConfig(stemmer=None))
    assert plain.search("runs", 5) == []


def test_empty_index_and_bad_config() -> None:
    assert LexicalIndex([], []).search("anything", 3) == []
    with pytest.raises(InvalidInput):
        LexicalConfig(method="tfidf")
    with pytest.raises(InvalidInput):
        LexicalIndex(["a"], [])
    with pytest.raises(InvalidInput):
        LexicalIndex(["a"], ["x"], LexicalConfig(stemmer="klingon"))


def test_response_round_trips_through_json() -> None:
    import json

    from embedops.search.models import Hit, SearchResponse

    response = SearchResponse([Hit("a", 0.5, "text", {"k": [1, 2]}, "m@1")], "m@1", "dense", 1.5)
    again = SearchResponse.from_dict(json.loads(json.dumps(response.to_dict())))
    assert again == response


def test_rrf_properties() -> None:
    from hypothesis import given
    from hypothesis import strategies as st

    ids = st.lists(st.sampled_from("abcdefghij"), unique=True, max_size=10)

    @given(ids, ids, st.floats(0, 1))
    def check(a: list[str], b: list[str], w: float) -> None:
        fused = hybrid_fuse(a, b, w, 100)
        kept = (set(a) if w > 0 else set()) | (set(b) if w < 1 else set())
        assert {d for d, _ in fused} == kept
        scores = [s for _, s in fused]
        assert scores == sorted(scores, reverse=True)
        if a and w == 1.0:
            assert [d for d, _ in fused] == a

    check()
