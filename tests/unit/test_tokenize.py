"""TokenizerSpec: validation, round trip, fingerprint sensitivity; normalization."""

from __future__ import annotations

import pytest

from embedops.errors import InvalidInput
from embedops.text import TokenizerSpec, normalize, tokenize


def test_spec_round_trips_through_constructor() -> None:
    spec = TokenizerSpec(lowercase=False, subword_min=3, subword_max=6, redact=("url", "email"))
    again = TokenizerSpec(**spec.to_dict())
    assert again == spec and again.fingerprint() == spec.fingerprint()


def test_fingerprint_changes_with_any_field() -> None:
    base = TokenizerSpec()
    assert base.fingerprint() != TokenizerSpec(lowercase=False).fingerprint()
    assert base.fingerprint() != TokenizerSpec(token_pattern=r"\w+").fingerprint()


def test_normalize_nfkc_controls_whitespace() -> None:
    assert normalize("Ｆｕｌｌ\u200bwidth\t\n text\x07 ") == "fullwidth text"
    assert normalize("ÉCOLE", lowercase=False) == "ÉCOLE"


def test_tokenize_default_keeps_letters_and_placeholders() -> None:
    assert tokenize("New York's 2 <EMAIL> café!") == ["new", "york", "s", "<email>", "café"]


@pytest.mark.parametrize(
    "kwargs",
    [{"normalization": "NFX"}, {"token_pattern": "("}, {"min_token_len": 0},
     {"min_token_len": 5, "max_token_len": 2}, {"subword_min": 5, "subword_max": 3}],
)
def test_invalid_specs_are_refused(kwargs: dict) -> None:
    with pytest.raises(InvalidInput):
        TokenizerSpec(**kwargs)
