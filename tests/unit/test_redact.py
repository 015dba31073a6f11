"""PII redaction: what must be replaced, what must survive, and the placeholders' tokens."""

from __future__ import annotations

import pytest

from embedops.errors import InvalidInput
from embedops.text.redact import ALL_KINDS, luhn_ok, redact
from embedops.text.tokenize import TokenizerSpec

POSITIVE = [
    ("write to john.doe+news@example.co.uk today", "write to <EMAIL> today", "email"),
    ("Mail: A_B@sub.example.org.", "Mail: <EMAIL>.", "email"),
    ("pay with 4111 1111 1111 1111 now", "pay with <CARD> now", "card"),
    ("card 4111-1111-1111-1111.", "card <CARD>.", "card"),
    ("card 4111111111111111", "card <CARD>", "card"),
    ("amex 3782 822463 10005 ok", "amex <CARD> ok", "card"),
    ("mastercard 5555555555554444", "mastercard <CARD>", "card"),
    ("visa-13 4222222222222 ok", "visa-13 <CARD> ok", "card"),
    ("19-digit 6011000990139424009", "19-digit <CARD>", "card"),
    ("server 192.168.0.1.", "server <IP>.", "ipv4"),
    ("from 10.0.0.255 to 8.8.8.8", "from <IP> to <IP>", "ipv4"),
    ("v6 2001:db8::1 up", "v6 <IP> up", "ipv6"),
    ("link fe80::97d8:db2:8c10:b6d6 ok", "link <IP> ok", "ipv6"),
    ("full 2001:0db8:0000:0000:0000:ff00:0042:8329", "full <IP>", "ipv6"),
    ("mapped ::ffff:192.0.2.128 here", "mapped <IP> here", "ipv6"),
    ("call (555) 123-4567 today", "call <PHONE> today", "phone"),
    ("call 555-123-4567", "call <PHONE>", "phone"),
    ("call 555.123.4567", "call <PHONE>", "phone"),
    ("call +1 408 654-0760", "call <PHONE>", "phone"),
    ("ring +44 20 7946 0958.", "ring <PHONE>.", "phone"),
    ("tel +33 1 23 45 67 89", "tel <PHONE>", "phone"),
    ("db https://admin:s3cret@db.example.com/x?y=1 here", "db <URL> here", "url_credentials"),
    ("ftp://user:pw@host.org", "<URL>", "url_credentials"),
]

NEGATIVE = [
    "meeting on 2024-01-15 at 12:30:45",
    "in the year 1999, and 1990-1995 or 1914-1918",
    "it costs $1,234.56 or 12,345,678 units",
    "plain numbers 1234567 and 123456789012",
    "version 1.2.3 and 10.0.19041.1 and 3.11",
    "bad address 999.1.1.1 and 256.256.256.256",
    "card 4111111111111112 fails luhn",
    "zeros 0000000000000000 are a placeholder",
    "ISBN 0-306-40615-2",
    "pages 123-456 and ratio 3:2:1",
    "C++ std::vector and Note:: blocks",
    "mac 00:1a:2b:3c:4d:5e",
    "https://example.com/path@section is no credential",
    "an @mention and a name@host without a domain",
    "x4111111111111111 is glued to a word",
]


@pytest.mark.parametrize(("text", "expected", "kind"), POSITIVE)
def test_pii_is_replaced_by_a_typed_placeholder(text: str, expected: str, kind: str) -> None:
    result = redact(text)
    assert result.text == expected
    assert result.counts[kind] == expected.count("<") and result.total == result.counts[kind]


@pytest.mark.parametrize("text", NEGATIVE)
def test_non_pii_survives_unchanged(text: str) -> None:
    result = redact(text)
    assert result.text == text
    assert result.total == 0


def test_only_the_requested_kinds_are_redacted() -> None:
    text = "a@b.com 4111111111111111 10.0.0.1"
    result = redact(text, kinds=["card"])
    assert result.text == "a@b.com <CARD> 10.0.0.1"
    assert result.counts == {"card": 1}


def test_counts_cover_every_requested_kind() -> None:
    result = redact("mail x@y.org and x2@y.org, call 555-123-4567")
    assert result.counts == {
        "card": 0, "email": 2, "ipv4": 0, "ipv6": 0, "phone": 1, "url_credentials": 0
    }


def test_unknown_kind_is_refused_with_the_known_ones() -> None:
    with pytest.raises(InvalidInput, match="unknown redaction kind.*passport") as info:
        redact("x", kinds=["email", "passport"])
    assert "url_credentials" in str(info.value)
    assert info.value.http_status == 422


@pytest.mark.parametrize(
    ("digits", "ok"),
    [("4111111111111111", True), ("4111111111111112", False), ("79927398713", True)],
)
def test_luhn(digits: str, ok: bool) -> None:
    assert luhn_ok(digits) is ok


def test_placeholders_stay_one_token_after_tokenizing() -> None:
    spec = TokenizerSpec(redact=ALL_KINDS)
    tokens = spec.tokenize("Mail bob@example.com or call 555-123-4567 from 10.1.2.3")
    assert tokens == ["mail", "<email>", "or", "call", "<phone>", "from", "<ip>"]


def test_secret_never_survives_in_any_token() -> None:
    spec = TokenizerSpec(redact=ALL_KINDS)
    tokens = spec.tokenize("postgres://svc:hunter2@10.0.0.5:5432/db")
    assert "hunter" not in " ".join(tokens) and tokens == ["<url>"]
