"""Bounds on item metadata, checked before anything reaches storage or serialisation.

A stored item is returned by every search that hits it, so one hostile value (metadata nested
hundreds of levels deep, an integer wider than 64 bits, a lone surrogate) would otherwise make
each of those searches fail in the JSON encoder. ``check_metadata`` walks the value without
recursion and refuses, before it is stored:

* values that are not JSON: only str, int (64-bit), finite float, bool, None, list/tuple and
  dict with str keys are allowed;
* nesting deeper than ``MAX_DEPTH`` levels (the outer object is level 1);
* more than ``MAX_KEYS`` keys in one object, keys longer than ``MAX_KEY_CHARS`` characters,
  strings longer than ``MAX_STRING_CHARS`` characters;
* more than ``MAX_METADATA_BYTES`` bytes of canonical JSON in all;
* strings or keys that are not valid Unicode (lone surrogates cannot be encoded as UTF-8).

Messages give the item id, the limit and what to do; they never repeat the values themselves.
"""

from __future__ import annotations

import json
import math
from typing import Any

from embedops.errors import InvalidInput, LimitExceeded

MAX_DEPTH = 32
MAX_KEYS = 1024
MAX_KEY_CHARS = 256
MAX_STRING_CHARS = 16_384
MAX_METADATA_BYTES = 64 * 1024
INT_MIN, INT_MAX = -(2**63), 2**63 - 1

_TYPES_HINT = "use strings, 64-bit integers, finite numbers, booleans, null, lists and objects"
_SIZE_HINT = "keep metadata small: store large values elsewhere and put a reference here"


def _label(item_id: Any) -> str:
    """The item id for a message, shortened (and safe to print even if it is not a str)."""
    text = item_id if isinstance(item_id, str) else type(item_id).__name__
    return ascii(text[:40])


def _invalid(item_id: Any, problem: str, hint: str = _TYPES_HINT) -> InvalidInput:
    return InvalidInput(f"metadata of item {_label(item_id)} {problem}", hint)


def _too_big(item_id: Any, problem: str) -> LimitExceeded:
    return LimitExceeded(f"metadata of item {_label(item_id)} {problem}", _SIZE_HINT)


def _scalar_size(value: Any, item_id: Any) -> int:
    """A lower bound of the JSON bytes of a scalar; raises when the scalar is not allowed."""
    if value is None or isinstance(value, bool):
        return 4
    if isinstance(value, str):
        if len(value) > MAX_STRING_CHARS:
            raise _too_big(
                item_id,
                f"has a string value of {len(value)} characters (limit {MAX_STRING_CHARS})",
            )
        return len(value) + 2
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise _invalid(item_id, "has an integer outside the signed 64-bit range")
        return 1
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _invalid(item_id, "has a NaN or infinite number, which JSON cannot hold")
        return 1
    raise _invalid(item_id, f"has a value of type {type(value).__name__}, which JSON cannot hold")


def _object_size(obj: dict[Any, Any], item_id: Any) -> int:
    """Check the keys of one object; return a lower bound of their JSON bytes."""
    if len(obj) > MAX_KEYS:
        raise _too_big(item_id, f"has an object with {len(obj)} keys (limit {MAX_KEYS})")
    size = 2
    for key in obj:
        if not isinstance(key, str):
            raise _invalid(item_id, f"has a key of type {type(key).__name__}; keys must be strings")
        if len(key) > MAX_KEY_CHARS:
            raise _too_big(
                item_id, f"has a key of {len(key)} characters (limit {MAX_KEY_CHARS})"
            )
        size += len(key) + 4
    return size


def _walk(metadata: dict[str, Any], item_id: Any) -> None:
    """Check types, depth and sizes without recursion, stopping as soon as a bound is passed.

    ``size`` is a lower bound of the canonical JSON's bytes, so a tree made of shared
    sub-objects (tiny in memory, huge as JSON) is refused after a bounded amount of work.
    """
    stack: list[tuple[Any, int]] = [(metadata, 1)]
    size = 0
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
            size += _object_size(value, item_id)
        elif isinstance(value, list | tuple):
            children = value
            size += 2 + len(value)
        else:
            size += _scalar_size(value, item_id)
            children = ()
        if size > MAX_METADATA_BYTES:
            raise _too_big(item_id, f"is more than {MAX_METADATA_BYTES} bytes as JSON")
        if children and depth >= MAX_DEPTH and any(
            isinstance(c, dict | list | tuple) for c in children
        ):
            raise _invalid(
                item_id,
                f"is nested more than {MAX_DEPTH} levels deep; the limit is {MAX_DEPTH}",
                "flatten it: nest objects and lists at most "
                f"{MAX_DEPTH} levels deep",
            )
        stack.extend((child, depth + 1) for child in children)


def check_metadata(metadata: dict[str, Any], item_id: Any = "?") -> str:
    """Validate ``metadata`` against the bounds above; return its canonical JSON (sorted keys,
    no spaces, UTF-8 kept). Raises ``InvalidInput`` for a shape JSON cannot hold or that is too
    deep, ``LimitExceeded`` for one that is too large."""
    if not isinstance(metadata, dict):
        raise _invalid(item_id, f"must be an object, got {type(metadata).__name__}")
    _walk(metadata, item_id)
    try:
        text = json.dumps(metadata, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise _invalid(item_id, f"is not JSON-serializable ({type(exc).__name__})") from None
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise _invalid(
            item_id, "has a string or key that is not valid UTF-8 (a lone surrogate)",
            "send text as valid Unicode",
        ) from None
    if size > MAX_METADATA_BYTES:
        raise _too_big(item_id, f"is {size} bytes as JSON (limit {MAX_METADATA_BYTES})")
    return text


def check_utf8(value: str, what: str) -> None:
    """Refuse a str that cannot be encoded as UTF-8 (it holds a lone surrogate)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(
            f"{what} is not valid UTF-8 (it holds a lone surrogate)", "send text as valid Unicode"
        ) from None
