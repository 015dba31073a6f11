"""PII the red-team run found unredacted (issue 21, item 8), and the ordinary numbers that
must still survive the wider rules."""

from __future__ import annotations

import pytest

from embedops.text.redact import redact

MISSED = [
    ("cache redis://:p4ssw0rd@cache:6379 up", "cache <URL> up", "url_credentials"),
    ("amqp://:s3cret@mq.example.org/vhost", "<URL>", "url_credentials"),
    ("call 5551234567 now", "call <PHONE> now", "phone"),
    ("call 415 555 2671.", "call <PHONE>.", "phone"),
    ("Berlin 0049 30 1234567", "Berlin <PHONE>", "phone"),
    ("office 0044 20 7946 0958, ask", "office <PHONE>, ask", "phone"),
    ("mail jörg@bücher.de today", "mail <EMAIL> today", "email"),
    ("to ñandú@correo.example.es.", "to <EMAIL>.", "email"),
    ("mail 用户@例子.广告 now", "mail <EMAIL> now", "email"),
    ("punycode a@xn--bcher-kva.de", "punycode <EMAIL>", "email"),
    ("root user@localhost here", "root <EMAIL> here", "email"),
    ("cron root@localhost: done", "cron <EMAIL>: done", "email"),
    ("card 4111.1111.1111.1111 now", "card <CARD> now", "card"),
    ("card 5555.5555.5555.4444.", "card <CARD>.", "card"),
]


@pytest.mark.parametrize(("text", "expected", "kind"), MISSED)
def test_previously_missed_pii_is_redacted(text: str, expected: str, kind: str) -> None:
    result = redact(text)
    assert result.text == expected
    assert result.counts[kind] == 1 and result.total == 1


STILL_NOT_PII = [
    "in 1999 and 2024; years 1990 2000 2010 and 1914-1918",
    "it costs $1,234.56, EUR 1 234 567 or 12,345,678 units",
    "1234 items, 56789 rows and 123456 bytes",
    "plain numbers 1234567 and 123456789012",
    "timestamp 1700000000 and order 1234567890",
    "version 1.2.3, 10.0.19041.1, 2024.01.15 and 4.11.1111",
    "ISO 2024-01-15T12:30:45Z and 2024-01-15 12:30",
    "card 4111.1111.1111.1112 fails luhn",
    "ratio 1.5 and 3.14159 and 2.71828",
    "an @mention, @decorator and name@host",
    "https://example.com/path@section is no credential",
    "bond 007 and 00 12 34",
    "zip 94107 and 12345-6789",
    "ids 000123 and 0000000000",
]


@pytest.mark.parametrize("text", STILL_NOT_PII)
def test_ordinary_numbers_and_words_survive(text: str) -> None:
    result = redact(text)
    assert result.text == text
    assert result.total == 0
