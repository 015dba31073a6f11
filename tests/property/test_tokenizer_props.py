"""Properties of the text pipeline: stable fingerprints, idempotent normalization, clean
tokens, bulk tokenizing equal to line-by-line tokenizing, and idempotent redaction."""

from __future__ import annotations

import dataclasses

from hypothesis import example, given, settings
from hypothesis import strategies as st

from embedops.text.corpus import tokenize_batch
from embedops.text.normalize import normalize
from embedops.text.redact import ALL_KINDS, redact
from embedops.text.tokenize import TokenizerSpec

# Text with the characters where tokenizing and redaction get interesting.
_ALPHABET = st.sampled_from(
    list("abcXYZ019 @.:-+()/\t\n_<>") + ["é", "ß", "ﬁ", "Ｆ", "\u200b", "\u0301", "İ", "Σ", "東"]
)
texts = st.one_of(st.text(max_size=80), st.text(_ALPHABET, max_size=80))
specs = st.builds(
    TokenizerSpec,
    normalization=st.sampled_from(["NFKC", "NFC", "none"]),
    lowercase=st.booleans(),
    min_token_len=st.integers(1, 3),
    max_token_len=st.integers(3, 40),
    redact=st.sampled_from([(), ALL_KINDS, ("email", "phone")]),
)


@given(specs)
def test_fingerprint_is_stable_and_survives_a_round_trip(spec: TokenizerSpec) -> None:
    again = TokenizerSpec(**spec.to_dict())
    assert again == spec and again.fingerprint() == spec.fingerprint()
    assert len(spec.fingerprint()) == 16


@given(specs, st.sampled_from(["lowercase", "min_token_len", "redact", "phrases_sha256"]))
def test_fingerprint_changes_with_every_field(spec: TokenizerSpec, name: str) -> None:
    changed = {
        "lowercase": not spec.lowercase,
        "min_token_len": 3 if spec.min_token_len != 3 else 2,
        "redact": ("ipv4",),
        "phrases_sha256": "0" * 64,
    }[name]
    assert dataclasses.replace(spec, **{name: changed}).fingerprint() != spec.fingerprint()


@given(texts, st.sampled_from(["NFKC", "NFC", "none"]), st.booleans())
@example("\ufb01\u0300", "NFC", True)  # casefold turns the ligature into "fi": NFC composes again
def test_normalize_is_idempotent(text: str, form: str, lowercase: bool) -> None:
    once = normalize(text, form, lowercase)
    assert normalize(once, form, lowercase) == once


@settings(max_examples=200)
@given(texts, specs)
def test_tokens_are_clean(text: str, spec: TokenizerSpec) -> None:
    for token in spec.tokenize(text):
        assert token and not any(c.isspace() for c in token)
        assert spec.min_token_len <= len(token) <= spec.max_token_len


@settings(max_examples=200)
@given(st.lists(texts, max_size=8), specs)
def test_bulk_tokenizing_equals_line_by_line(batch: list[str], spec: TokenizerSpec) -> None:
    assert tokenize_batch(batch, spec) == [spec.tokenize(t) for t in batch]


@given(texts)
def test_retokenizing_the_tokens_gives_the_same_tokens(text: str) -> None:
    spec = TokenizerSpec(redact=ALL_KINDS)
    tokens = spec.tokenize(text)
    assert spec.tokenize(" ".join(tokens)) == tokens


@given(texts)
def test_redaction_is_idempotent(text: str) -> None:
    once = redact(text)
    twice = redact(once.text)
    assert twice.text == once.text and twice.total == 0
