"""Metadata filters: validation, matching, CLI parsing."""

from __future__ import annotations

import pytest

from embedops.errors import InvalidInput, LimitExceeded
from embedops.search.filters import Filter, compile_filters, parse_cli_filters

DOCS = [
    {"lang": "en", "year": 1990, "tag": "news", "ok": True},
    {"lang": "fr", "year": 2005, "tag": "blog", "ok": False},
    {"lang": "en", "year": 2020, "ok": 1},
    {},
]


def _match(filters: dict) -> list[int]:
    f = compile_filters(filters)
    return [i for i, d in enumerate(DOCS) if f.matches(d)]


def test_empty_filter_matches_everything() -> None:
    assert _match({}) == [0, 1, 2, 3]
    assert not compile_filters(None)
    assert compile_filters(None).matches(None)


def test_equality_in_and_ranges() -> None:
    assert _match({"lang": "en"}) == [0, 2]
    assert _match({"tag": {"in": ["blog", "news"]}}) == [0, 1]
    assert _match({"year": {"gte": 1990, "lte": 2005}}) == [0, 1]
    assert _match({"year": {"gt": 1990, "lt": 2020}}) == [1]
    assert _match({"lang": "en", "year": {"gte": 2000}}) == [2]
    assert _match({"lang": {"ne": "en"}}) == [1]


def test_booleans_are_not_numbers() -> None:
    assert _match({"ok": True}) == [0]
    assert _match({"ok": 1}) == [2]


def test_missing_field_or_other_type_does_not_match() -> None:
    assert _match({"tag": {"gte": 5}}) == []
    assert _match({"missing": "x"}) == []


def test_filter_object_passes_through() -> None:
    f = compile_filters({"lang": "en"})
    assert compile_filters(f) is f
    assert isinstance(f, Filter)


@pytest.mark.parametrize(
    "bad",
    [
        ["lang", "en"],
        {"lang": {"like": "e%"}},
        {"lang": {}},
        {"lang": {"in": []}},
        {"lang": {"in": "en"}},
        {"year": {"gte": [1]}},
        {"lang": {"a": 1}},
        {"": 1},
        {"lang": {"eq": {"nested": 1}}},
    ],
)
def test_bad_filters_are_refused(bad: object) -> None:
    with pytest.raises(InvalidInput):
        compile_filters(bad)  # type: ignore[arg-type]


def test_too_many_in_values() -> None:
    with pytest.raises(LimitExceeded):
        compile_filters({"x": {"in": list(range(5000))}})


def test_cli_expressions() -> None:
    parsed = parse_cli_filters(["lang=en", "year>=1990", "year<2000", 'tag=["a","b"]', "n!=3"])
    assert parsed == {
        "lang": {"eq": "en"},
        "year": {"gte": 1990, "lt": 2000},
        "tag": {"in": ["a", "b"]},
        "n": {"ne": 3},
    }
    assert compile_filters(parsed).matches({"lang": "en", "year": 1995, "tag": "b", "n": 4})


@pytest.mark.parametrize("bad", ["lang", ">=3", "year>=1&year>=2"])
def test_bad_cli_expressions(bad: str) -> None:
    with pytest.raises(InvalidInput):
        parse_cli_filters([bad, bad])
