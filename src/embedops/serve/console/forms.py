"""Reading the console's forms: query strings and url-encoded POST bodies, as plain strings,
checked here into typed values with errors that name the field.

Pages read their inputs themselves (no FastAPI parameter validation), so that a bad value
gives the page with a visible message instead of the API's JSON error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qsl

from fastapi import Request

from embedops.errors import InvalidInput, LimitExceeded

MAX_FIELD_CHARS = 10_000
MAX_FORM_BYTES = 256 * 1024


class Form:
    """The fields of one form (first value of each name; ``all`` gives every value)."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._pairs = list(pairs)
        self._first: dict[str, str] = {}
        for name, value in self._pairs:
            self._first.setdefault(name, value)

    @classmethod
    def of_query(cls, request: Request) -> Form:
        """The query string's fields."""
        return cls(list(request.query_params.multi_items()))

    @classmethod
    async def of_body(cls, request: Request) -> Form:
        """The fields of an ``application/x-www-form-urlencoded`` body."""
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            raise LimitExceeded(f"the form has {len(body)} bytes; the limit is {MAX_FORM_BYTES}")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput("the form is not valid UTF-8") from exc
        return cls(parse_qsl(text, keep_blank_values=True, max_num_fields=200))

    def raw(self, name: str) -> str | None:
        """The field as sent (None when absent)."""
        return self._first.get(name)

    def all(self, name: str) -> list[str]:
        """Every value of a repeated field, empty ones left out."""
        return [v for n, v in self._pairs if n == name and v.strip()]

    def text(self, name: str, default: str = "", required: bool = False, label: str = "",
             max_chars: int = MAX_FIELD_CHARS) -> str:
        """A text field, stripped; InvalidInput when required and empty, or too long."""
        value = (self._first.get(name) or "").strip()
        what = label or name
        if required and not value:
            raise InvalidInput(f"{what} is empty", f"type a {what}")
        if len(value) > max_chars:
            raise LimitExceeded(f"{what} has {len(value)} characters; the limit is {max_chars}")
        return value or default

    def integer(self, name: str, default: int | None, low: int, high: int | None = None,
                label: str = "") -> int | None:
        """An integer field in ``[low, high]`` (blank: ``default``). Over ``high`` is a
        LimitExceeded that names the limit; anything else unreadable is an InvalidInput."""
        value = (self._first.get(name) or "").strip()
        what = label or name
        if not value:
            return default
        try:
            number = int(value)
        except ValueError:
            raise InvalidInput(f"{what} must be a whole number, got {value[:40]!r}") from None
        if number < low:
            raise InvalidInput(f"{what} must be at least {low}, got {number}")
        if high is not None and number > high:
            raise LimitExceeded(f"{what}={number} is over the limit of {high}",
                                f"ask for at most {high}")
        return number

    def number(self, name: str, default: float, low: float, high: float,
               label: str = "") -> float:
        """A finite number in ``[low, high]`` (blank: ``default``)."""
        value = (self._first.get(name) or "").strip()
        what = label or name
        if not value:
            return default
        try:
            number = float(value)
        except ValueError:
            raise InvalidInput(f"{what} must be a number, got {value[:40]!r}") from None
        if not math.isfinite(number) or not low <= number <= high:
            raise InvalidInput(f"{what} must be between {low} and {high}, got {value[:40]}")
        return number

    def choice(self, name: str, choices: Sequence[str], default: str, label: str = "") -> str:
        """One of ``choices`` (blank: ``default``)."""
        value = (self._first.get(name) or "").strip() or default
        if value not in choices:
            raise InvalidInput(f"unknown {label or name} {value[:60]!r}",
                               f"use one of {', '.join(choices)}")
        return value

    def values(self) -> Mapping[str, str]:
        """First value of every field (to fill a form in again)."""
        return dict(self._first)
