"""Bounds on item metadata (and id/text encodability) checked when an ``ItemIn`` is made, so a
hostile item never reaches storage or serialisation (issue 21, item 1)."""

from __future__ import annotations

import json

import orjson
import pytest

from embedops.errors import EmbedopsError, InvalidInput, LimitExceeded
from embedops.store.bounds import (
    MAX_DEPTH,
    MAX_KEY_CHARS,
    MAX_KEYS,
    MAX_METADATA_BYTES,
    MAX_STRING_CHARS,
    check_metadata,
)
from embedops.store.models import ItemIn


def nested(depth: int) -> dict:
    """An object nested ``depth`` levels deep (the outer object is level 1)."""
    out: dict = {"leaf": 1}
    for _ in range(depth - 1):
        out = {"a": out}
    return out


def nested_lists(depth: int) -> dict:
    out: list = [1]
    for _ in range(depth - 2):
        out = [out]
    return {"l": out}


VALID = [
    {},
    {"n": 1, "odd": True, "tags": ["a", "b"], "score": 0.5, "none": None},
    {"deep": nested(MAX_DEPTH - 1)},
    nested(MAX_DEPTH),
    nested_lists(MAX_DEPTH),
    {"ünïcode": "日本語 text", "big": 2**63 - 1, "neg": -(2**63)},
    {"t": (1, "two")},
    {f"k{i}": i for i in range(MAX_KEYS)},
    {"s": "x" * MAX_STRING_CHARS},
    {"k" * MAX_KEY_CHARS: 1},
]


@pytest.mark.parametrize("metadata", VALID)
def test_valid_metadata_is_accepted_and_serialisable(metadata: dict) -> None:
    item = ItemIn("id-1", "some text", metadata)
    assert item.metadata == metadata
    assert json.loads(orjson.dumps(item.metadata)) == json.loads(json.dumps(metadata))


def test_the_poison_item_of_the_red_team_run_is_refused() -> None:
    # 253+ levels made orjson fail on every search that hit the item.
    with pytest.raises(InvalidInput, match=f"nested more than {MAX_DEPTH} levels deep"):
        ItemIn("poison", "text", nested(260))


def test_depth_is_counted_through_lists_too() -> None:
    with pytest.raises(InvalidInput, match="levels deep"):
        ItemIn("poison", "text", nested_lists(MAX_DEPTH + 1))
    with pytest.raises(InvalidInput, match="levels deep"):
        ItemIn("poison", "text", nested(MAX_DEPTH + 1))


def test_very_deep_metadata_is_refused_without_recursion_error() -> None:
    with pytest.raises(InvalidInput, match="levels deep"):
        ItemIn("poison", "text", nested(50_000))


def test_circular_metadata_is_refused() -> None:
    loop: dict = {}
    loop["self"] = loop
    with pytest.raises(InvalidInput):
        ItemIn("loop", "text", loop)


BAD_TYPES = [
    {"x": {1, 2}},
    {"x": b"bytes"},
    {"x": object()},
    {1: "int key"},
    {"x": {("tuple", "key"): 1}},
    {"x": float("nan")},
    {"x": [float("inf")]},
]


@pytest.mark.parametrize("metadata", BAD_TYPES)
def test_non_json_values_are_refused(metadata: dict) -> None:
    with pytest.raises(InvalidInput, match="metadata"):
        ItemIn("id-1", "text", metadata)


@pytest.mark.parametrize("value", [2**64, -(2**63) - 1, 10**30])
def test_integers_outside_64_bits_are_refused(value: int) -> None:
    # orjson cannot serialise them: one such item would break every search that returns it.
    with pytest.raises(InvalidInput, match="64-bit"):
        ItemIn("id-1", "text", {"n": [value]})


@pytest.mark.parametrize(
    ("metadata", "what"),
    [
        ({"s": "x" * (MAX_STRING_CHARS + 1)}, "string value"),
        ({"k" * (MAX_KEY_CHARS + 1): 1}, "key"),
        ({f"k{i}": i for i in range(MAX_KEYS + 1)}, "keys"),
        ({f"k{i}": "y" * 1000 for i in range(100)}, "bytes"),
        ({"l": list(range(MAX_METADATA_BYTES))}, "bytes|items"),
    ],
)
def test_oversized_metadata_is_refused(metadata: dict, what: str) -> None:
    with pytest.raises(LimitExceeded, match=what) as err:
        ItemIn("id-1", "text", metadata)
    assert err.value.http_status == 413 and err.value.hint


def test_a_wide_and_deep_tree_is_refused_quickly() -> None:
    # 8 keys per level, 30 levels deep, shared sub-objects: 8**30 leaves if walked naively.
    level: dict = {"leaf": "v"}
    for _ in range(30):
        level = {f"k{i}": level for i in range(8)}
    with pytest.raises(LimitExceeded, match="bytes"):
        ItemIn("wide", "text", level)


@pytest.mark.parametrize(
    ("item_id", "text", "metadata"),
    [
        ("id-\ud800", "text", {}),
        ("id-1", "text \udfff here", {}),
        ("id-1", "text", {"k": "lone \ud83d surrogate"}),
        ("id-1", "text", {"k\udc00": 1}),
    ],
)
def test_lone_surrogates_are_refused(item_id: str, text: str, metadata: dict) -> None:
    with pytest.raises(InvalidInput, match="UTF-8"):
        ItemIn(item_id, text, metadata)


def test_messages_do_not_echo_the_values() -> None:
    secret = "hunter2-secret-value"
    cases = [
        {secret: {"x": float("nan")}},
        {"s": secret * 2000},
        {secret * 40: 1},
        {"x": {secret, 1}},
    ]
    for metadata in cases:
        with pytest.raises(EmbedopsError) as err:
            ItemIn("id-1", "text", metadata)
        assert secret not in str(err.value)


def test_check_metadata_returns_the_canonical_json() -> None:
    assert check_metadata({"b": 1, "a": [True, None]}) == '{"a":[true,null],"b":1}'


HOSTILE = [nested(260), {"n": 2**70}, {"k": "\ud800"}, {"s": "x" * (MAX_METADATA_BYTES + 1)}]


def test_hostile_items_are_refused_by_the_facade_and_search_keeps_working(workspace) -> None:
    import numpy as np

    from embedops.api import Embedops
    from embedops.models.registry import Registry
    from embedops.models.static import StaticVectors, publish_static
    from embedops.text.tokenize import TokenizerSpec

    words = ["red", "green", "blue", "cyan", "pink", "gold"]
    table = StaticVectors(words, np.random.default_rng(0).standard_normal((6, 8)))
    publish_static(Registry(workspace), "tiny", table, kind="word2vec", spec=TokenizerSpec())
    api = Embedops(workspace)
    try:
        api.collections.create("c", model="tiny")
        api.upsert_items("c", [{"id": f"i{n}", "text": f"{w} {words[n - 1]}",
                                "metadata": {"n": n}} for n, w in enumerate(words)])
        for metadata in HOSTILE:
            with pytest.raises((InvalidInput, LimitExceeded)):
                api.upsert_items("c", [{"id": "poison", "text": "red green", "metadata": metadata}])
        for mode in ("dense", "lexical", "hybrid", "two_stage"):
            hits = api.search("c", "red green", k=3, mode=mode).hits
            assert hits and "poison" not in [h.id for h in hits]
            orjson.dumps([h.metadata for h in hits])
    finally:
        api.close()
