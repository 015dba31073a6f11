"""Real English texts available offline, for calibrating and checking transformer exports.

Half are sentences of news text (gensim's bundled Lee corpus, varied length), half short
definitions (the WordNet glosses shipped with embedops), so that a calibration sees both the
long and the short inputs a collection holds. The draw is deterministic for a given ``seed``;
different seeds give disjoint-enough samples to calibrate on one and check on another.
"""

from __future__ import annotations

import json
import lzma
from functools import lru_cache
from pathlib import Path

import numpy as np


@lru_cache(maxsize=1)
def _lee_sentences() -> tuple[str, ...]:
    from gensim.test.utils import datapath

    lines = Path(datapath("lee_background.cor")).read_text(encoding="utf-8").splitlines()
    out = [s.strip() for line in lines for s in line.split(". ") if len(s.strip()) > 3]
    return tuple(out)


@lru_cache(maxsize=1)
def _glosses() -> tuple[str, ...]:
    path = Path(__file__).resolve().parent.parent / "data" / "wordnet-glosses.jsonl.xz"
    out: list[str] = []
    with lzma.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                out.append(str(json.loads(line)["gloss"]))
            if len(out) >= 20_000:
                break
    return tuple(out)


def calibration_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` texts, half news sentences and half glosses, drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    lee, glosses = _lee_sentences(), _glosses()
    half = n // 2
    picks = [lee[i] for i in rng.choice(len(lee), size=min(half, len(lee)), replace=False)]
    picks += [glosses[i] for i in rng.choice(len(glosses), size=n - len(picks), replace=False)]
    return picks
