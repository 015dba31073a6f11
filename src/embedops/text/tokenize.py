"""Tokenization and the TokenizerSpec that fingerprints it.

Two services that tokenize differently produce vectors that look compatible and are not. Every
model carries its TokenizerSpec; its ``fingerprint()`` is stored with every vector, and a query
made with another fingerprint is refused.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

from embedops.errors import InvalidInput
from embedops.text.normalize import normalize

#: Redaction placeholders such as ``<email>`` stay one token; otherwise runs of letters.
DEFAULT_TOKEN_PATTERN = r"<[a-z_]+>|[^\W\d_]+"
_FORMS = ("NFKC", "NFC", "NFKD", "NFD", "none")


@dataclass(frozen=True)
class TokenizerSpec:
    """How text becomes tokens. Frozen; round-trips through ``TokenizerSpec(**spec.to_dict())``.

    ``redact`` lists the PII kinds replaced by placeholders before tokenizing (see
    ``embedops.text.redact``); ``subword_min``/``subword_max`` are the character n-gram range of
    fastText-style models (0 = no subwords); ``phrases_sha256`` identifies a phrase model.
    """

    normalization: str = "NFKC"
    lowercase: bool = True
    token_pattern: str = DEFAULT_TOKEN_PATTERN
    min_token_len: int = 1
    max_token_len: int = 40
    subword_min: int = 0
    subword_max: int = 0
    redact: tuple[str, ...] = field(default_factory=tuple)
    phrases_sha256: str | None = None

    def __post_init__(self) -> None:
        if self.normalization not in _FORMS:
            raise InvalidInput(
                f"unknown normalization '{self.normalization}'", f"use one of {', '.join(_FORMS)}"
            )
        try:
            re.compile(self.token_pattern)
        except re.error as exc:
            raise InvalidInput(f"token_pattern is not a valid regex: {exc}") from exc
        if not 1 <= self.min_token_len <= self.max_token_len:
            raise InvalidInput(
                f"token length range [{self.min_token_len}, {self.max_token_len}] is empty",
                "min_token_len must be >= 1 and <= max_token_len",
            )
        if self.subword_min < 0 or (self.subword_max and self.subword_max < self.subword_min):
            raise InvalidInput(
                f"subword range [{self.subword_min}, {self.subword_max}] is invalid",
                "use 0, 0 for none or 1 <= min <= max",
            )
        # JSON gives lists; keep the dataclass hashable and canonical.
        object.__setattr__(self, "redact", tuple(sorted(self.redact)))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``TokenizerSpec(**d)`` rebuilds an equal spec."""
        d = asdict(self)
        d["redact"] = list(self.redact)
        return d

    def fingerprint(self) -> str:
        """sha256 (hex, first 16 chars) of the canonical JSON of this spec."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def tokenize(self, text: str) -> list[str]:
        """Normalize, redact and split ``text`` into tokens as this spec says."""
        return tokenize(text, self)


@lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def tokenize(text: str, spec: TokenizerSpec | None = None) -> list[str]:
    """Tokens of ``text`` under ``spec`` (default spec when None)."""
    spec = spec or TokenizerSpec()
    if spec.redact:
        from embedops.text.redact import redact

        text = redact(text, kinds=spec.redact).text
    text = normalize(text, spec.normalization, spec.lowercase)
    lo, hi = spec.min_token_len, spec.max_token_len
    return [t for t in _compiled(spec.token_pattern).findall(text) if lo <= len(t) <= hi]
