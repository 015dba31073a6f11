"""Data shipped with embedops: WordNet 3.0 glosses (117,659 synsets) for the quickstart.

WordNet is (c) Princeton University; its licence (``WORDNET-LICENSE``, shipped alongside)
permits redistribution with the notice.
"""

from __future__ import annotations

import itertools
import json
import lzma
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent


def wordnet_glosses_path() -> Path:
    """Path of ``wordnet-glosses.jsonl.xz``: one JSON object per synset with ``id``, ``pos``,
    ``lemmas`` (list of str) and ``gloss``."""
    return _HERE / "wordnet-glosses.jsonl.xz"


def wordnet_glosses(limit: int | None = None) -> Iterator[dict[str, Any]]:
    """The shipped synsets in file order (``id``, ``pos``, ``lemmas``, ``gloss``), the first
    ``limit`` of them when given."""
    with lzma.open(wordnet_glosses_path(), "rt", encoding="utf-8") as fh:
        yield from itertools.islice(map(json.loads, fh), limit)


def wordnet_license_path() -> Path:
    """Path of the WordNet licence text that must accompany the glosses."""
    return _HERE / "WORDNET-LICENSE"
