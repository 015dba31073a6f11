"""A small real workspace for the torture tests: a tiny static model and texts of its words."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embedops.config import Workspace
from embedops.models.registry import Registry
from embedops.models.static import StaticVectors, publish_static
from embedops.text.tokenize import TokenizerSpec

WORDS = ("apple banana cherry grape lemon mango melon olive peach pear plum berry kiwi lime "
         "fig date nut seed leaf root stem bark tree bush moss fern vine reed cane herb").split()


def texts(n: int, seed: int) -> list[str]:
    """``n`` six-word texts over ``WORDS`` (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=6)) for _ in range(n)]


def publish_tiny(home: Path, name: str = "tiny", dim: int = 16, seed: int = 7) -> Workspace:
    """A workspace at ``home`` (created if needed) with a random static model ``name`` over
    ``WORDS``."""
    ws = Workspace(home).ensure()
    rng = np.random.default_rng(seed)
    table = StaticVectors(list(WORDS), rng.standard_normal((len(WORDS), dim)).astype(np.float32))
    publish_static(Registry(ws), name, table, kind="word2vec", spec=TokenizerSpec())
    return ws
