"""Properties of the card (Luhn) and phone rules of PII redaction (issue 21, item 8)."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from embedops.text.redact import luhn_ok, redact

SEPARATORS = ["", " ", "-", "."]
CONTEXTS = [("", ""), ("pay with ", " now"), ("card: ", "."), ("(", ")"), ("use ", ", thanks")]


def luhn_check_digit(body: str) -> str:
    """The digit that makes ``body + digit`` pass the Luhn check."""
    return next(str(d) for d in range(10) if luhn_ok(body + str(d)))


@st.composite
def card_numbers(draw: st.DrawFn, valid: bool = True) -> str:
    """13-19 digit numbers that pass (or fail) Luhn. Issuer numbers never start with 0 and a run
    of one digit is a placeholder, so neither is drawn."""
    n = draw(st.integers(13, 19))
    body = str(draw(st.integers(1, 9))) + "".join(
        draw(st.lists(st.sampled_from("0123456789"), min_size=n - 2, max_size=n - 2))
    )
    check = int(luhn_check_digit(body))
    if not valid:
        check = (check + draw(st.integers(1, 9))) % 10
    digits = body + str(check)
    if len(set(digits)) == 1:
        digits = digits[:-2] + ("12" if valid else "13")
        return digits if luhn_ok(digits) == valid else draw(card_numbers(valid))
    return digits


def formatted(digits: str, sep: str) -> str:
    """Groups of four (the last one shorter), as cards are printed."""
    return sep.join(digits[i:i + 4] for i in range(0, len(digits), 4))


@settings(max_examples=200, deadline=None)
@given(card_numbers(), st.sampled_from(SEPARATORS), st.sampled_from(CONTEXTS))
def test_every_luhn_valid_card_is_redacted(digits: str, sep: str, context) -> None:
    before, after = context
    result = redact(before + formatted(digits, sep) + after)
    assert result.text == before + "<CARD>" + after
    assert result.counts["card"] == 1 and result.total == 1


@settings(max_examples=200, deadline=None)
@given(card_numbers(valid=False), st.sampled_from(SEPARATORS), st.sampled_from(CONTEXTS))
def test_a_luhn_invalid_number_is_never_redacted_as_a_card(digits: str, sep: str, context) -> None:
    before, after = context
    text = before + formatted(digits, sep) + after
    assert redact(text).counts["card"] == 0
    assert redact(text, kinds=["card"]).text == text


PHONE_FORMATS = [
    "{a}{e}{l}", "{a} {e} {l}", "{a}-{e}-{l}", "{a}.{e}.{l}", "({a}) {e}-{l}", "({a}) {e} {l}",
    "+1 {a} {e} {l}", "+1 {a}-{e}-{l}", "+1 ({a}) {e}-{l}", "00{cc} {a} {e}{l}",
    "+{cc} {a} {e} {l}",
]


@settings(max_examples=200, deadline=None)
@given(
    st.from_regex(r"\A[2-9][0-9]{2}\Z"), st.from_regex(r"\A[0-9]{3}\Z"),
    st.from_regex(r"\A[0-9]{4}\Z"), st.from_regex(r"\A[1-9][0-9]{0,2}\Z"),
    st.sampled_from(PHONE_FORMATS), st.sampled_from([("call ", " today"), ("", "."), ("", "")]),
)
def test_every_formatted_phone_number_is_redacted(a, e, l, cc, fmt, context) -> None:  # noqa: E741
    before, after = context
    result = redact(before + fmt.format(a=a, e=e, l=l, cc=cc) + after, kinds=["phone"])
    assert result.text == before + "<PHONE>" + after
    assert result.counts["phone"] == 1


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 999_999), st.integers(0, 99_999_999), st.dates(dt.date(1000, 1, 1)),
    st.lists(st.integers(0, 99), min_size=2, max_size=3), st.integers(1000, 2999),
)
def test_ordinary_numbers_are_never_redacted(count, cents, day, version, year) -> None:
    """Counts, prices, ISO dates, version numbers (a four-part one would be an IPv4) and years."""
    text = (f"{count} items cost ${cents / 100:,.2f} on {day.isoformat()} in version "
            f"{'.'.join(map(str, version))} of {year}, {year} {year + 1} {year + 2}")
    result = redact(text)
    assert result.text == text and result.total == 0
