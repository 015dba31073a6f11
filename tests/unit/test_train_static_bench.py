"""The static training bench's batched analogy scorer gives gensim's own answers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from gensim.models import KeyedVectors
from gensim.test.utils import datapath

BENCH = Path(__file__).resolve().parents[2] / "bench" / "train_static.py"


def _bench() -> object:
    spec = importlib.util.spec_from_file_location("train_static_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _vectors() -> KeyedVectors:
    """Analogy words with a shared offset per section plus noise (so some questions are
    answered right and some wrong), a few missing words, and upper-case variants of others."""
    rng = np.random.default_rng(0)
    base: dict[str, np.ndarray] = {}
    offset = None
    for line in open(datapath("questions-words.txt"), encoding="utf-8"):
        if line.startswith(":"):
            offset = rng.normal(size=24)
            continue
        a, b, _, _ = line.lower().split()
        if a not in base:
            base[a] = rng.normal(size=24)
        if b not in base:
            base[b] = base[a] + offset + rng.normal(scale=1.2, size=24)
    keys = [k for i, k in enumerate(base) if i % 17]  # some questions out of vocabulary
    keys += [k.capitalize() for k in keys[::9]]  # case variants after the lower-case words
    vectors = np.stack([base[k.lower()] + rng.normal(scale=0.3, size=24) for k in keys])
    kv = KeyedVectors(24)
    kv.add_vectors(keys, vectors.astype(np.float32))
    return kv


def test_batched_analogies_match_gensims_evaluator() -> None:
    kv = _vectors()
    ours, our_sections = _bench().word_analogies(kv, datapath("questions-words.txt"))  # type: ignore[attr-defined]
    theirs, their_sections = kv.evaluate_word_analogies(datapath("questions-words.txt"))
    assert 0.05 < theirs < 0.95  # both right and wrong answers are being compared
    assert abs(ours - theirs) < 1e-12
    mine = {s["section"]: (len(s["correct"]), len(s["incorrect"])) for s in our_sections}
    for section in their_sections[:-1]:
        assert mine[section["section"]] == (len(section["correct"]), len(section["incorrect"]))
