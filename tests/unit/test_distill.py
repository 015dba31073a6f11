"""Distillation of MiniLM into a static model: lineage, tokenizer, encoding, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embedops.config import Workspace
from embedops.errors import CorpusError, InvalidInput
from embedops.models.loader import load_encoder
from embedops.models.registry import ModelVersion, Registry
from embedops.models.static import StaticVectors
from embedops.text.tokenize import TokenizerSpec
from embedops.train.distill import DistillConfig, build_vocabulary, distill, sif_weights

pytestmark = pytest.mark.transformer


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    from embedops.models.transformer import import_transformer

    registry = Registry(Workspace(tmp_path_factory.mktemp("distill") / "ws"))
    import_transformer(registry, "minilm", "minilm", onnx=False)
    return registry


@pytest.fixture(scope="module")
def distilled(reg: Registry, lee_corpus: Path) -> ModelVersion:
    config = DistillConfig(dim=64, tokenizer_words=False, min_count=4, max_corpus_words=800)
    return distill(reg, "minilm", "mini-static", config, corpus=lee_corpus)


def test_distilled_version_records_its_parent_and_tokenizer(distilled: ModelVersion) -> None:
    m = distilled.manifest
    assert distilled.kind == "distilled" and m["parent"] == "minilm@1"
    assert m["dim"] == 64 and m["vocab_size"] == 800
    assert m["tokenizer_fingerprint"] == TokenizerSpec().fingerprint()
    assert m["params"]["dim"] == 64 and m["training_data_sha256"]
    table = StaticVectors.read(distilled)
    assert table.weights is not None and (table.weights > 0).all() and (table.weights <= 1).all()
    frequent, rare = table.key_to_index["the"], table.index_to_key[-1]
    assert table.weights[frequent] < table.weights[table.key_to_index[rare]]


def test_distilled_encoder_keeps_the_teachers_neighbourhoods(reg, distilled) -> None:
    student = load_encoder(distilled, reg)
    texts = [
        "the government and the parliament",
        "political authorities",
        "fire burning homes",
        "firefighters and the fires",
    ]
    vecs = student.encode(texts)
    assert vecs.shape == (4, 64) and np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    sims = vecs @ vecs.T
    assert sims[0, 1] > sims[0, 2] + 0.2 and sims[2, 3] > sims[2, 1] + 0.2


def test_build_vocabulary_without_corpus_uses_zipf_ranks() -> None:
    words, p = build_vocabulary(["the", "cat", "sat"], None, DistillConfig())
    assert words == ["the", "cat", "sat"] and p[0] > p[1] > p[2]
    assert np.isclose(p.sum(), 1.0)
    w = sif_weights(p, 1e-4)
    assert w[0] < w[1] < w[2]
    with pytest.raises(InvalidInput, match="vocabulary is empty"):
        build_vocabulary([], None, DistillConfig())


def test_distilling_a_static_model_or_a_bad_corpus_is_refused(reg, distilled, tmp_path) -> None:
    with pytest.raises(InvalidInput, match="needs a transformer"):
        distill(reg, distilled.ref, "again")
    empty = tmp_path / "empty.txt"
    empty.write_text("1234 5678\n")
    with pytest.raises(CorpusError, match="no words"):
        distill(reg, "minilm", "x", DistillConfig(tokenizer_words=False), corpus=empty)
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(CorpusError, match="cannot read"):
        distill(reg, "minilm", "x", corpus=binary)
    assert [mv.ref for mv in reg.list("x")] == []


@pytest.mark.parametrize(
    "fields",
    [
        {"dim": 0},
        {"dim": "64"},
        {"sif_coefficient": 0},
        {"sif_coefficient": 2.0},
        {"batch_size": 0},
        {"min_count": -1},
        {"max_corpus_words": None},
    ],
)
def test_bad_distill_config_is_refused(fields) -> None:
    with pytest.raises(InvalidInput):
        DistillConfig(**fields)


def test_cli_distills_and_prints_the_new_version(reg, lee_corpus, capsys, monkeypatch) -> None:
    from embedops.cli.main import main
    from embedops.config import HOME_ENV

    monkeypatch.setenv(HOME_ENV, str(reg.workspace.home))
    args = [
        "-q",
        "distill",
        "minilm",
        "--name",
        "cli-static",
        "--dim",
        "16",
        "--corpus",
        str(lee_corpus),
        "--max-words",
        "120",
        "--no-tokenizer-words",
        "--json",
    ]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ref"] == "cli-static@1" and out["parent"] == "minilm@1" and out["dim"] == 16
    assert reg.get("cli-static").manifest["vocab_size"] == 120


def test_config_round_trips() -> None:
    cfg = DistillConfig(dim=None, min_count=2)
    assert DistillConfig(**json.loads(json.dumps(cfg.to_dict()))) == cfg
