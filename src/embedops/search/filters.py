"""Metadata filters: ``{"field": value}`` equality, ``{"field": {"in": [...]}}`` membership and
``{"field": {"gte": x, "lte": y}}`` ranges (also ``gt``, ``lt``, ``eq``, ``ne``).

Filters are validated once (``compile_filters``) into a ``Filter`` whose ``matches(metadata)`` is
applied to candidates. An item without the field, or with a value of another type than a range
bound, does not match; that is not an error, because metadata is free-form per item.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from embedops.errors import InvalidInput, LimitExceeded

OPERATORS = ("eq", "ne", "in", "gt", "gte", "lt", "lte")
MAX_IN_VALUES = 1000
_SCALARS = (str, int, float, bool, type(None))
_HINT = 'write {"field": value}, {"field": {"in": [v1, v2]}} or {"field": {"gte": 1, "lte": 9}}'


@dataclass(frozen=True)
class Condition:
    """One test on one metadata field."""

    field: str
    op: str
    value: Any

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        """True when ``metadata[field]`` passes this test (a missing field never passes)."""
        if self.field not in metadata:
            return False
        actual = metadata[self.field]
        if self.op == "eq":
            return _same(actual, self.value)
        if self.op == "ne":
            return not _same(actual, self.value)
        if self.op == "in":
            return any(_same(actual, v) for v in self.value)
        if not _comparable(actual, self.value):
            return False
        if self.op == "gt":
            return bool(actual > self.value)
        if self.op == "gte":
            return bool(actual >= self.value)
        if self.op == "lt":
            return bool(actual < self.value)
        return bool(actual <= self.value)


@dataclass(frozen=True)
class Filter:
    """A conjunction of conditions; an empty filter matches everything."""

    conditions: tuple[Condition, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.conditions)

    def matches(self, metadata: Mapping[str, Any] | None) -> bool:
        """True when every condition holds for ``metadata``."""
        meta = metadata or {}
        return all(c.matches(meta) for c in self.conditions)


def _same(a: Any, b: Any) -> bool:
    # JSON has one number type, but True == 1 in Python: keep booleans apart from numbers.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return bool(a == b)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _comparable(a: Any, b: Any) -> bool:
    return (_is_number(a) and _is_number(b)) or (isinstance(a, str) and isinstance(b, str))


def compile_filters(filters: Mapping[str, Any] | Filter | None) -> Filter:
    """Validate a filter mapping and return a ``Filter``; bad shapes raise InvalidInput."""
    if filters is None:
        return Filter()
    if isinstance(filters, Filter):
        return filters
    if not isinstance(filters, Mapping):
        raise InvalidInput(f"filters must be an object, got {type(filters).__name__}", _HINT)
    conditions: list[Condition] = []
    for name, spec in filters.items():
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"filter field names must be non-empty strings, got {name!r}")
        conditions.extend(_field_conditions(name, spec))
    return Filter(tuple(conditions))


def _field_conditions(name: str, spec: Any) -> list[Condition]:
    if not isinstance(spec, Mapping):
        return [Condition(name, "eq", _scalar(name, "eq", spec))]
    if not spec:
        raise InvalidInput(f"filter on '{name}' has no operator", _HINT)
    out = []
    for op, value in spec.items():
        if op not in OPERATORS:
            raise InvalidInput(
                f"unknown filter operator '{op}' on '{name}'", f"use one of {', '.join(OPERATORS)}"
            )
        out.append(Condition(name, op, _operand(name, op, value)))
    return out


def _operand(name: str, op: str, value: Any) -> Any:
    if op == "in":
        if not isinstance(value, list | tuple) or not value:
            raise InvalidInput(f"'in' on '{name}' needs a non-empty list, got {value!r}", _HINT)
        if len(value) > MAX_IN_VALUES:
            raise LimitExceeded(
                f"'in' on '{name}' lists {len(value)} values; the limit is {MAX_IN_VALUES}",
                "split the query or filter on a coarser field",
            )
        return tuple(_scalar(name, op, v) for v in value)
    if op in ("eq", "ne"):
        return _scalar(name, op, value)
    if not (_is_number(value) or isinstance(value, str)):
        raise InvalidInput(
            f"'{op}' on '{name}' needs a number or a string, got {value!r}", _HINT
        )
    return value


def _scalar(name: str, op: str, value: Any) -> Any:
    if not isinstance(value, _SCALARS):
        raise InvalidInput(
            f"'{op}' on '{name}' needs a string, number, boolean or null, got "
            f"{type(value).__name__}",
            _HINT,
        )
    return value


_CLI = re.compile(r"^\s*([^<>=!\s]+)\s*(>=|<=|!=|=|>|<)\s*(.*)$", re.S)
_CLI_OPS = {"=": "eq", "!=": "ne", ">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}


def parse_cli_filters(exprs: list[str]) -> dict[str, Any]:
    """Turn CLI expressions (``lang=en``, ``year>=1990``, ``tag=["a","b"]``) into a filter dict.

    Values are read as JSON when they parse (numbers, booleans, lists), else as plain strings;
    a JSON list after ``=`` means ``in``.
    """
    out: dict[str, Any] = {}
    for expr in exprs:
        match = _CLI.match(expr)
        if not match:
            raise InvalidInput(
                f"cannot read filter '{expr}'", "write field=value, field>=x, field<=y or field!=v"
            )
        name, sym, raw = match.groups()
        value = _cli_value(raw)
        op = "in" if sym == "=" and isinstance(value, list) else _CLI_OPS[sym]
        spec = out.setdefault(name, {})
        if not isinstance(spec, dict) or op in spec:
            raise InvalidInput(f"filter on '{name}' given twice with the same operator")
        spec[op] = value
    return out


def _cli_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw
