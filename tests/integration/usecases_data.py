"""Shared data of the use-case tests: WordNet glosses shipped in ``embedops.data`` (real text with
a real label, the part of speech) and a small word2vec model trained on them."""

from __future__ import annotations

import json
import lzma
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from embedops.config import HOME_ENV, Workspace
from embedops.data import wordnet_glosses_path
from embedops.engine.facade import Embedops
from embedops.models.registry import Registry
from embedops.models.static import StaticVectors, publish_static
from embedops.text.tokenize import TokenizerSpec

PER_POS = 150


def glosses(per_pos: int = PER_POS, train: int = 20000) -> tuple[list[dict[str, str]], list[str]]:
    """(``per_pos`` labelled glosses of each part of speech, ``train`` gloss texts for the
    word vectors), deterministic."""
    rows: list[dict[str, str]] = []
    counts: dict[str, int] = {}
    texts: list[str] = []
    with lzma.open(wordnet_glosses_path(), "rt", encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            rec = json.loads(line)
            if n % 7 == 0 and len(texts) < train:
                texts.append(rec["gloss"])
            if n % 11 == 0 and counts.get(rec["pos"], 0) < per_pos:
                counts[rec["pos"]] = counts.get(rec["pos"], 0) + 1
                rows.append({"id": rec["id"], "text": rec["gloss"], "pos": rec["pos"],
                             "lemma": rec["lemmas"][0]})
    return rows, texts


def build(home: Path) -> Workspace:
    """A workspace with models ``w2v`` and ``w2v-rot`` (a rotation of it) and collection ``wn``
    (labelled glosses, flat index)."""
    from gensim.models import Word2Vec

    ws = Workspace(home).ensure()
    rows, texts = glosses()
    spec = TokenizerSpec()
    model = Word2Vec([spec.tokenize(t) for t in texts + [r["text"] for r in rows]],
                     vector_size=32, min_count=2, epochs=5, workers=1, seed=3)
    table = StaticVectors.from_gensim(model.wv)
    publish_static(Registry(ws), "w2v", table, kind="word2vec", spec=spec)
    # The same space under a random rotation: a mapping must recover it.
    rotation, _ = np.linalg.qr(np.random.default_rng(5).standard_normal((32, 32)))
    rotated = StaticVectors(list(table.index_to_key),
                            (np.asarray(table.vectors) @ rotation).astype(np.float32))
    publish_static(Registry(ws), "w2v-rot", rotated, kind="word2vec", spec=spec)
    with Embedops(ws) as eo:
        eo.collections.create("wn", model="w2v")
        eo.upsert_items("wn", [{"id": r["id"], "text": r["text"],
                                "metadata": {"pos": r["pos"], "lemma": r["lemma"]}}
                               for r in rows])
        eo.build_index("wn", kind="flat", quiet=True)
    return ws


def engine_on_copy(built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                   ) -> Iterator[Embedops]:
    """An engine on a copy of the workspace folder ``built`` (also ``$EMBEDOPS_HOME``, for CLI
    calls), closed afterwards: each test changes its own copy."""
    home = tmp_path / "ws"
    shutil.copytree(built, home)
    monkeypatch.setenv(HOME_ENV, str(home))
    monkeypatch.setenv("EMBEDOPS_QUIET", "1")
    with Embedops(home=home) as api:
        yield api
