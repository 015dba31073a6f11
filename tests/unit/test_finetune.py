"""Fine-tuning MiniLM on WordNet gloss → lemma pairs improves held-out recall (small, real)."""

from __future__ import annotations

import json
import lzma
import random
from pathlib import Path

import numpy as np
import pytest

from embedops.config import Workspace
from embedops.errors import InvalidInput
from embedops.evaluate.postprocess import GLOSSES
from embedops.models.loader import load_encoder
from embedops.models.registry import Registry
from embedops.train.finetune import (
    FinetuneConfig,
    Pair,
    finetune,
    load_sentence_transformer,
    mine_hard_negatives,
)

pytestmark = [pytest.mark.transformer, pytest.mark.slow]


def _gloss_pairs(n: int, seed: int = 0) -> list[dict[str, str]]:
    """Distinct-lemma (gloss, lemma) pairs from the WordNet glosses the package ships."""
    with lzma.open(GLOSSES, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    random.Random(seed).shuffle(rows)
    out, seen = [], set()
    for row in rows:
        lemma = row["lemmas"][0].replace("_", " ")
        if lemma not in seen:
            seen.add(lemma)
            out.append({"anchor": row["gloss"], "positive": lemma})
        if len(out) == n:
            break
    return out


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    from embedops.models.transformer import import_transformer

    registry = Registry(Workspace(tmp_path_factory.mktemp("finetune") / "ws"))
    import_transformer(registry, "minilm", "minilm", onnx=False)
    return registry


def test_finetuning_improves_heldout_recall(reg: Registry, tmp_path: Path) -> None:
    pairs = _gloss_pairs(400)
    train, heldout = tmp_path / "train.jsonl", tmp_path / "heldout.jsonl"
    train.write_text("".join(json.dumps(p) + "\n" for p in pairs[:160]))
    heldout.write_text("".join(json.dumps(p) + "\n" for p in pairs[250:]))
    config = FinetuneConfig(batch_size=16, learning_rate=2e-4, hard_negatives=True, seed=0)
    mv = finetune(reg, "minilm", "minilm-gloss", train, heldout, config, onnx=False)

    assert mv.kind == "transformer" and mv.parent == "minilm@1"
    parent = reg.get("minilm")
    assert mv.tokenizer_fingerprint == parent.tokenizer_fingerprint
    result = mv.manifest["eval"]["heldout"]
    assert result["before"]["n"] == result["after"]["n"] == 150
    assert result["after"]["mrr@10"] > result["before"]["mrr@10"]
    assert result["after"]["recall@10"] >= result["before"]["recall@10"]
    assert mv.params["train_pairs"] == 160 and mv.params["finetune"]["hard_negatives"]
    assert not list(mv.path.rglob("*.bin")) and not list(mv.path.rglob("*.pkl"))
    mv.verify()

    texts = ["a domestic animal", "the capital of a country"]
    ours = load_encoder(mv, reg).encode(texts)
    reference = load_sentence_transformer(mv).encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose(ours, reference, atol=1e-4)
    before = load_encoder(parent, reg).encode(texts)
    assert not np.allclose(ours, before, atol=1e-3)


def test_hard_negatives_are_mined_from_other_positives(reg: Registry) -> None:
    model = load_sentence_transformer(reg.get("minilm"))
    pairs = [
        Pair("a young dog", "puppy"),
        Pair("a young cat", "kitten"),
        Pair("a large body of salt water", "ocean"),
        Pair("x", "y", "given"),
    ]
    mined = mine_hard_negatives(model, pairs)
    assert mined[0].negative == "kitten" and mined[1].negative == "puppy"
    assert mined[3].negative == "given"
    assert all(p.negative != p.positive for p in mined)


def test_finetuning_a_static_model_is_refused(reg: Registry, tmp_path: Path) -> None:
    from embedops.models.static import StaticVectors, publish_static
    from embedops.text.tokenize import TokenizerSpec

    table = StaticVectors(["a", "b"], np.eye(2, dtype=np.float32))
    publish_static(reg, "tiny", table, kind="static", spec=TokenizerSpec())
    path = tmp_path / "p.jsonl"
    path.write_text('{"anchor": "a", "positive": "b"}\n')
    with pytest.raises(InvalidInput, match="tiny@1 is a static model; fine-tuning needs"):
        finetune(reg, "tiny", "x", path)
