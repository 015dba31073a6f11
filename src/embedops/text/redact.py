"""PII redaction: e-mail addresses, phone numbers, payment cards, IP addresses and URL
credentials become typed placeholders (``<EMAIL>``, ``<PHONE>``, ``<CARD>``, ``<IP>``,
``<URL>``) before text is tokenized, trained on or stored.

Speed matters because training redacts every line of a corpus: each kind runs only on lines
that contain its cheap trigger (``@``, ``://``, ``:``, a digit), and candidates found by a
loose regex are confirmed by a precise check (Luhn for cards, ``ipaddress`` for IPs).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from embedops.errors import InvalidInput

ALL_KINDS: tuple[str, ...] = ("email", "phone", "card", "ipv4", "ipv6", "url_credentials")
PLACEHOLDERS: dict[str, str] = {
    "email": "<EMAIL>",
    "phone": "<PHONE>",
    "card": "<CARD>",
    "ipv4": "<IP>",
    "ipv6": "<IP>",
    "url_credentials": "<URL>",
}

# user:password@ or only :password@ (redis://:secret@cache:6379).
_URL_CREDENTIALS = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]*:[^\s/@]*@[^\s<>\"']+")
# Letters and digits of any script ([^\W_]), so internationalised addresses (jörg@bücher.de)
# are found too; the top-level domain is letters or punycode; ``localhost`` needs none.
_LABEL = r"[^\W_](?:(?:[^\W_]|-)*[^\W_])?"
_EMAIL = re.compile(
    rf"(?<![\w.%+-])[^\W_][\w.%+-]*@(?:{_LABEL}(?:\.{_LABEL})*\.(?:[^\W\d_]{{2,}}|xn--[a-z0-9-]+)"
    r"|localhost)\b(?![-@])"
)
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?"
    r"(?![\w:]|\.\d)"
)
# Cards, IPv4 and phones are found in one pass. The pattern starts with a plain character
# class, so the regex engine skips quickly to candidate characters; the alternatives then look
# behind at that first character (a leading lookbehind or branch would disable the skipping).
_DIGIT_KINDS = re.compile(
    r"[+(\d](?:"
    # Contiguous 13-19 digits, or 4-digit-led groups joined by one repeated space, dash or dot.
    r"(?P<card>(?<=\d)(?<![\w.,-]\d)(?:\d{12,18}|\d{3}(?P<sep>[ .-])\d{4,6}(?P=sep)\d{4,5}"
    r"(?:(?P=sep)\d{1,4})?(?:(?P=sep)\d{1,3})?)(?![\w-]|[.,]\d))"
    r"|(?P<ipv4>(?<=\d)(?<![\w.]\d)\d{0,2}(?:\.\d{1,3}){3}(?![\w]|\.\w))"
    r"|(?P<phone>(?<![\w+.-].)(?:"
    r"(?<=\+)\d{1,3}(?:[ -]?\(\d{1,4}\))?(?:[ -]?\d{1,5}){2,5}"  # +44 20 7946 0958
    r"|(?<=\()\d{3}\)[ .-]?\d{3}[ .-]\d{4}"  # (555) 123-4567
    r"|(?<=\d)\d{2}(?P<s>[ .-])\d{3}(?P=s)\d{4}"  # 555-123-4567, 555.123.4567, 415 555 2671
    r"|(?<=[2-9])\d{9}"  # 5551234567 (a leading 0 or 1 is an id or a Unix time, not an area code)
    r"|(?<=0)0[1-9]\d{0,2}(?:[ -]\d{1,8}){1,5}"  # 0049 30 1234567 (international, 00 prefix)
    r")(?![\w-]|[.,]\d)))"
)


@dataclass(frozen=True)
class Redaction:
    """Redacted ``text`` and how many spans of each kind were replaced."""

    text: str
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Number of spans replaced, all kinds together."""
        return sum(self.counts.values())


def luhn_ok(digits: str) -> bool:
    """True when the digit string passes the Luhn checksum of payment cards."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _is_card(span: str) -> bool:
    digits = span.replace(" ", "").replace("-", "").replace(".", "")
    # No issuer number starts with 0; runs of one digit are placeholders, not cards.
    if digits[0] == "0" or digits.count(digits[0]) == len(digits):
        return False
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


def _is_ipv6(span: str) -> bool:
    # "be::" or "Note::" (reStructuredText) are words, not addresses: want two hex groups.
    if sum(1 for group in span.split(":") if group) < 2:
        return False
    try:
        ipaddress.IPv6Address(span)
    except ValueError:
        return False
    return True


def _is_ipv4(span: str) -> bool:
    return all(int(octet) <= 255 for octet in span.split("."))


def _is_phone(span: str) -> bool:
    n = sum(c.isdigit() for c in span)
    return 7 <= n <= 15


_CONFIRM: dict[str, Callable[[str], bool]] = {
    "card": _is_card,
    "ipv4": _is_ipv4,
    "phone": _is_phone,
    "ipv6": _is_ipv6,
}


def check_kinds(kinds: Iterable[str]) -> tuple[str, ...]:
    """Validate redaction kind names; return them sorted and de-duplicated."""
    chosen = tuple(sorted(set(kinds)))
    unknown = [k for k in chosen if k not in ALL_KINDS]
    if unknown:
        raise InvalidInput(
            f"unknown redaction kind(s): {', '.join(unknown)}",
            f"use any of {', '.join(ALL_KINDS)}",
        )
    return chosen


@lru_cache(maxsize=64)
def _checked(kinds: tuple[str, ...]) -> tuple[frozenset[str], tuple[str, ...]]:
    chosen = check_kinds(kinds)
    return frozenset(chosen), chosen


def _replace(
    pattern: re.Pattern[str], text: str, wanted: frozenset[str], counts: dict[str, int]
) -> str:
    """Substitute confirmed matches of ``pattern``; the kind is the name of the group matched
    (or the only kind the pattern finds)."""

    def sub(m: re.Match[str]) -> str:
        kind = m.lastgroup if m.lastgroup in _CONFIRM else _KIND_OF[pattern]
        span = m.group(0)
        if kind not in wanted or (kind in _CONFIRM and not _CONFIRM[kind](span)):
            return span
        counts[kind] += 1
        return PLACEHOLDERS[kind]

    return pattern.sub(sub, text)


_KIND_OF = {_URL_CREDENTIALS: "url_credentials", _EMAIL: "email", _IPV6: "ipv6"}


def redact(text: str, kinds: Iterable[str] = ALL_KINDS) -> Redaction:
    """Replace PII of the given ``kinds`` in ``text`` by typed placeholders.

    Dates, years, prices, version numbers and plain numbers are left alone; a 13-19 digit
    number is a card only if it passes the Luhn check; IPv4 octets must be 0-255. A phone is
    ``+``/``00``-prefixed international, ``(555) 123-4567``, three-three-four digits joined by
    one repeated space, dot or dash, or ten digits in a row that start with 2-9 (so such an id
    is redacted too: that is the price of catching unformatted phone numbers).
    """
    wanted, ordered = _checked(kinds if isinstance(kinds, tuple) else tuple(kinds))
    counts = dict.fromkeys(ordered, 0)
    # Cheap substring tests first: most lines of prose contain none of these characters.
    if "@" in text:
        if "url_credentials" in wanted and "://" in text:
            text = _replace(_URL_CREDENTIALS, text, wanted, counts)
        if "email" in wanted:
            text = _replace(_EMAIL, text, wanted, counts)
    if "ipv6" in wanted and ("::" in text or text.count(":") >= 2):
        text = _replace(_IPV6, text, wanted, counts)
    if wanted & _NUMERIC:
        text = _replace(_DIGIT_KINDS, text, wanted, counts)
    return Redaction(text=text, counts=counts)


_NUMERIC = frozenset({"card", "ipv4", "phone"})
