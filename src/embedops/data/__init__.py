"""Data shipped with embedops: WordNet 3.0 glosses (117,659 synsets) for the quickstart.

WordNet is (c) Princeton University; its licence (``WORDNET-LICENSE``, shipped alongside)
permits redistribution with the notice.
"""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def wordnet_glosses_path() -> Path:
    """Path of ``wordnet-glosses.jsonl.xz``: one JSON object per synset with ``id``, ``pos``,
    ``lemmas`` (list of str) and ``gloss``."""
    return _HERE / "wordnet-glosses.jsonl.xz"


def wordnet_license_path() -> Path:
    """Path of the WordNet licence text that must accompany the glosses."""
    return _HERE / "WORDNET-LICENSE"
