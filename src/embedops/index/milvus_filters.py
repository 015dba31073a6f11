"""Metadata filters as Milvus boolean expressions, with the same meaning as ``Filter.matches``.

Item metadata is stored in the Milvus collection's JSON field ``meta`` in a *typed* layout
(``encode_metadata``), because Milvus compares JSON values loosely (``true == 1`` holds there)
while an embedops filter keeps booleans apart from numbers and never matches a missing field:

    meta["p" + h] = 1          the field is present (whatever its type)
    meta["s" + h] = "..."      its value, when it is a string
    meta["n" + h] = 3.5        ... a number (an int or a float, never a bool)
    meta["b" + h] = true       ... a boolean
    meta["z" + h] = 1          ... null
                                (a list or an object is present but matches no comparison)

where ``h`` is the first 16 hex digits of the sha256 of the field name. Field names therefore
never appear in an expression: a hostile name cannot inject anything, whatever it contains.
String *values* are written as double-quoted literals with ``\\``, ``"``, newline, carriage
return and tab escaped; any other control character is refused (``InvalidInput``) rather than
guessed at, because Milvus servers disagree on the escapes they accept. Numbers are written
with ``repr`` (finite only).

``to_expr(compile_filters({...}))`` gives the expression; ``""`` for an empty filter. The
filter is taken by shape (``conditions`` of ``field``/``op``/``value``), since ``search`` is a
stage below ``index`` and is not imported here.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from embedops.errors import InvalidInput

FIELD = "meta"
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_RANGE_OPS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


class Condition(Protocol):
    """One test of ``embedops.search.filters`` (field, operator, operand)."""

    @property
    def field(self) -> str: ...

    @property
    def op(self) -> str: ...

    @property
    def value(self) -> Any: ...


class Filter(Protocol):
    """A conjunction of conditions (``embedops.search.filters.Filter``)."""

    @property
    def conditions(self) -> Sequence[Condition]: ...


def field_hash(name: str) -> str:
    """The 16 hex digits that stand for metadata field ``name`` in the typed layout."""
    return hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _tag(value: Any) -> str:
    if value is None:
        return "z"
    if isinstance(value, bool):
        return "b"
    if isinstance(value, int | float):
        return "n"
    if isinstance(value, str):
        return "s"
    return ""  # a list or an object: present, never equal to a scalar


def encode_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """The typed layout of one item's metadata (see the module docstring)."""
    out: dict[str, Any] = {}
    for name, value in (metadata or {}).items():
        h = field_hash(str(name))
        out["p" + h] = 1
        tag = _tag(value)
        if tag == "z":
            out["z" + h] = 1
        elif tag:
            out[tag + h] = value
    return out


def quote(text: str) -> str:
    """``text`` as a Milvus string literal; InvalidInput for control characters it cannot
    escape portably."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            raise InvalidInput(
                f"a filter value holds the control character U+{ord(ch):04X}, which cannot be "
                "sent to Milvus", "remove control characters from filter values")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def literal(value: Any) -> str:
    """A scalar filter operand as a Milvus literal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(f"a filter on a number needs a finite value, got {value!r}")
        return repr(value)
    if isinstance(value, str):
        return quote(value)
    raise InvalidInput(f"a Milvus filter cannot compare with {type(value).__name__}")


def _path(tag: str, h: str) -> str:
    return f'{FIELD}["{tag}{h}"]'


def _equal(h: str, value: Any) -> str:
    tag = _tag(value)
    if tag == "z":
        return f"exists {_path('z', h)}"
    return f"{_path(tag, h)} == {literal(value)}"


def condition_expr(cond: Condition) -> str:
    """One condition as a Milvus expression (parenthesised)."""
    h = field_hash(cond.field)
    if cond.op == "eq":
        return f"({_equal(h, cond.value)})"
    if cond.op == "ne":  # "exists" first: a comparison with a missing key is null, not false
        tag = _tag(cond.value)
        return (f"(exists {_path('p', h)} and not (exists {_path(tag, h)} and "
                f"{_equal(h, cond.value)}))")
    if cond.op == "in":
        return "(" + " or ".join(f"({_equal(h, v)})" for v in cond.value) + ")"
    tag = _tag(cond.value)  # ranges take a number or a string (compile_filters checks)
    return f"({_path(tag, h)} {_RANGE_OPS[cond.op]} {literal(cond.value)})"


def to_expr(filt: Filter | None) -> str:
    """The Milvus boolean expression of ``filt``: a conjunction of its conditions; ``""``
    (no filter) when it has none."""
    if filt is None or not filt.conditions:
        return ""
    return " and ".join(condition_expr(c) for c in filt.conditions)
