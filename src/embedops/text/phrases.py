"""Phrase detection (``new york`` → ``new_york``), learned with gensim's ``Phrases`` and kept
as a JSON phrase table, never pickled.

A model trained with phrases stores ``phrases.json`` in its ModelVersion and the table's
sha256 in ``TokenizerSpec.phrases_sha256`` (so it is part of the tokenizer fingerprint).
Queries must merge the same pairs: tokenize, then ``PhraseTable.apply``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedops.errors import IntegrityError, InvalidInput

PHRASES_FILE = "phrases.json"


@dataclass(frozen=True)
class PhraseTable:
    """Bigrams to merge, each ``(first, second, score)``, joined with ``delimiter``."""

    pairs: tuple[tuple[str, str, float], ...]
    delimiter: str = "_"
    _lookup: dict[tuple[str, str], str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pairs = tuple(sorted((str(a), str(b), float(s)) for a, b, s in self.pairs))
        object.__setattr__(self, "pairs", pairs)
        object.__setattr__(self, "_lookup", {(a, b): a + self.delimiter + b for a, b, _ in pairs})

    def __len__(self) -> int:
        return len(self.pairs)

    def apply(self, tokens: list[str]) -> list[str]:
        """Merge known bigrams greedily from left to right (as gensim's FrozenPhrases does
        without connector words)."""
        lookup, out, i, n = self._lookup, [], 0, len(tokens)
        while i < n:
            merged = lookup.get((tokens[i], tokens[i + 1])) if i + 1 < n else None
            if merged is not None:
                out.append(merged)
                i += 2
            else:
                out.append(tokens[i])
                i += 1
        return out

    def to_json(self) -> bytes:
        """Canonical JSON bytes (what ``sha256`` hashes and ``write`` stores)."""
        doc = {"delimiter": self.delimiter, "pairs": [list(p) for p in self.pairs]}
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    @property
    def sha256(self) -> str:
        """Hex sha256 of the canonical JSON: recorded in ``TokenizerSpec.phrases_sha256``."""
        return hashlib.sha256(self.to_json()).hexdigest()

    def write(self, folder: Path) -> Path:
        """Write ``phrases.json`` into ``folder`` (a model draft); return its path."""
        path = Path(folder) / PHRASES_FILE
        path.write_bytes(self.to_json())
        return path

    @classmethod
    def read(cls, path: Path, expected_sha256: str | None = None) -> PhraseTable:
        """Load a phrase table, checking it against ``expected_sha256`` when given."""
        data = Path(path).read_bytes()
        if expected_sha256 and hashlib.sha256(data).hexdigest() != expected_sha256:
            raise IntegrityError(
                f"phrase table {path} does not match the sha256 its tokenizer spec records",
                "the model folder was modified; train or import the model again",
            )
        try:
            doc = json.loads(data)
            return cls(tuple(tuple(p) for p in doc["pairs"]), doc["delimiter"])
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"phrase table {path} is malformed: {exc}") from exc

    @classmethod
    def for_version(cls, mv: Any) -> PhraseTable | None:
        """The phrase table of a ModelVersion, or None if it was trained without phrases."""
        expected = (mv.manifest.get("tokenizer") or {}).get("phrases_sha256")
        if not expected:
            return None
        return cls.read(mv.file(PHRASES_FILE), expected)


def learn_phrases(tokens_path: Path, min_count: int = 5, threshold: float = 10.0) -> PhraseTable:
    """Learn bigram phrases from a LineSentence file (one line of space-separated tokens per
    sentence) with gensim's ``Phrases`` (default scorer, no connector words)."""
    if min_count < 1 or threshold <= 0:
        raise InvalidInput(
            f"phrases need min_count >= 1 and threshold > 0, got {min_count}, {threshold}"
        )
    from gensim.models.phrases import Phrases
    from gensim.models.word2vec import LineSentence

    frozen = Phrases(
        LineSentence(str(tokens_path)), min_count=min_count, threshold=threshold,
        delimiter="_", connector_words=frozenset(),
    ).freeze()
    pairs = []
    for phrase, score in frozen.phrasegrams.items():
        parts = phrase.split("_")
        if len(parts) == 2:  # tokens holding the delimiter would be ambiguous: skip them
            pairs.append((parts[0], parts[1], float(score)))
    return PhraseTable(tuple(pairs))


def rewrite_with_phrases(tokens_path: Path, table: PhraseTable) -> None:
    """Rewrite a LineSentence file in place with ``table``'s bigrams merged (atomically)."""
    tmp = tokens_path.with_name(tokens_path.name + ".phrases")
    with open(tokens_path, encoding="utf-8") as src, open(tmp, "w", encoding="utf-8") as dst:
        for line in src:
            dst.write(" ".join(table.apply(line.split())) + "\n")
    os.replace(tmp, tokens_path)
