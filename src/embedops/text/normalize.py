"""Unicode normalization: NFKC, casing, control characters and whitespace."""

from __future__ import annotations

import re
import unicodedata
from typing import Literal, cast

# Control and format characters (Cc, Cf) except tab/newline, which become spaces below.
_CONTROL = re.compile(
    r"[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f"
    r"\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\ufeff]"
)
_SPACE = re.compile(r"\s+")


def normalize(text: str, form: str = "NFKC", lowercase: bool = True) -> str:
    """Normalize ``text``: Unicode ``form`` (or ``"none"``), drop control characters,
    collapse runs of whitespace to one space, strip, and optionally lowercase (casefold).
    """
    unicode_form = cast(Literal["NFC", "NFD", "NFKC", "NFKD"], form)
    if form != "none":
        text = unicodedata.normalize(unicode_form, text)
    text = _CONTROL.sub("", text)
    text = _SPACE.sub(" ", text).strip()
    if not lowercase:
        return text
    text = text.casefold()
    # casefolding can undo the form: "\ufb01" + a combining grave folds to "fi" + the grave,
    # which NFC composes to "f\xec"; normalizing again keeps normalize idempotent
    return unicodedata.normalize(unicode_form, text) if form != "none" else text
