"""Retrieval metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest

from embedops.evaluate.retrieval import (
    evaluate_run,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)


def test_hand_computed_values() -> None:
    ranked = ["a", "x", "b", "y"]
    assert recall_at_k(ranked, {"a", "b", "c"}, 2) == pytest.approx(1 / 3)
    assert precision_at_k(ranked, {"a", "b"}, 4) == 0.5
    assert mrr_at_k(ranked, {"b"}, 10) == pytest.approx(1 / 3)
    assert mrr_at_k(ranked, {"b"}, 2) == 0.0
    expected = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert ndcg_at_k(ranked, {"a", "b"}, 4) == pytest.approx(expected)
    assert ndcg_at_k(["b", "a"], {"a": 2, "b": 1}, 2) < 1.0


def test_evaluate_run_means_and_empty_relevance() -> None:
    scores = evaluate_run([["a"], ["z"]], [{"a"}, {"b"}], ks=(1, 10))
    assert scores["recall@1"] == 0.5 and scores["mrr@10"] == 0.5
    assert recall_at_k(["a"], set(), 5) == 0.0
