"""Fitting a distilled table to the teacher's sentence vectors (tokenlearn-style)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedops.errors import InvalidInput
from embedops.text.tokenize import TokenizerSpec
from embedops.train.distill import DistillConfig, bag_of_words, fit_rows, sample_texts

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta", "kappa"]


def _bags(texts: list[str]):
    return bag_of_words(texts, {w: i for i, w in enumerate(WORDS)}, TokenizerSpec())


def test_bag_of_words_rows_are_means_over_known_tokens() -> None:
    bags = _bags(["Alpha beta alpha unknown", "nothing known here", "kappa"]).toarray()
    assert bags.shape == (3, len(WORDS))
    assert np.allclose(bags[0, :2], [2 / 3, 1 / 3]) and bags[0, 2:].sum() == 0
    assert not bags[1].any() and bags[2, 7] == 1.0


def test_fit_rows_recovers_a_planted_table_and_keeps_unseen_words() -> None:
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(len(WORDS), 6))
    texts = [" ".join(rng.choice(WORDS[:6], 5)) for _ in range(300)]  # theta, kappa unseen
    bags = _bags(texts)
    targets = np.asarray(bags @ truth, dtype=np.float32)
    start = np.asarray(rng.normal(size=truth.shape), dtype=np.float32)
    fitted = fit_rows(start, bags, targets, ridge=1e-6, iterations=100)
    assert np.abs(bags @ fitted - targets).max() < 1e-3
    assert np.allclose(fitted[:6], truth[:6], atol=1e-3)
    # unseen rows keep their direction (only the common rescaling applies)
    scale = fitted[6:] / start[6:]
    assert np.allclose(scale, scale.flat[0], rtol=1e-5)


def test_a_strong_ridge_keeps_the_initial_rows() -> None:
    rng = np.random.default_rng(1)
    texts = [" ".join(rng.choice(WORDS, 4)) for _ in range(50)]
    bags = _bags(texts)
    start = np.asarray(rng.normal(size=(len(WORDS), 4)), dtype=np.float32)
    targets = np.asarray(rng.normal(size=(50, 4)), dtype=np.float32)
    loose = fit_rows(start, bags, targets, ridge=1e-3, iterations=50)
    tight = fit_rows(start, bags, targets, ridge=1e4, iterations=50)
    scaled = start / np.linalg.norm(bags @ start, axis=1).mean()
    assert np.abs(tight - scaled).max() < 1e-2 < np.abs(loose - scaled).max()


def test_sample_texts_is_seeded_and_cuts_long_lines(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    lines = [" ".join(f"w{i}x{j}" for j in range(3 + i % 7)) for i in range(200)] + ["too short"]
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    first = sample_texts(corpus, 20, seed=3, max_words=4)
    assert first == sample_texts(corpus, 20, seed=3, max_words=4)
    assert first != sample_texts(corpus, 20, seed=4, max_words=4)
    assert len(first) == 20 and len(set(first)) == 20
    assert all(3 <= len(t.split()) <= 4 for t in first)
    assert len(sample_texts(corpus, 500, seed=0, max_words=99)) == 200


@pytest.mark.parametrize("fields", [{"fit_texts": -1}, {"fit_ridge": 0}, {"fit_iterations": 1.5}])
def test_bad_fit_settings_are_refused(fields) -> None:
    with pytest.raises(InvalidInput):
        DistillConfig(**fields)


@pytest.mark.transformer
def test_fitting_brings_the_student_closer_to_its_teacher(tmp_path: Path, lee_corpus: Path) -> None:
    """On Lee lines left out of the fit, the fitted student's pairwise similarities follow the
    teacher's more closely than the plain (model2vec-style) table's."""
    from embedops.config import Workspace
    from embedops.models.loader import load_encoder
    from embedops.models.registry import Registry
    from embedops.models.transformer import import_transformer
    from embedops.train.finetune import load_sentence_transformer

    registry = Registry(Workspace(tmp_path / "ws"))
    teacher = import_transformer(registry, "minilm", "minilm", onnx=False)
    plain = DistillConfig(dim=64, tokenizer_words=False, min_count=2, max_corpus_words=3000)
    fitted = DistillConfig(**{**plain.to_dict(), "fit_texts": 150, "fit_max_words": 32})
    from embedops.train.distill import distill

    students = {
        label: load_encoder(distill(registry, "minilm", label, cfg, corpus=lee_corpus), registry)
        for label, cfg in (("plain", plain), ("fitted", fitted))
    }
    seen = set(sample_texts(lee_corpus, 150, seed=0, max_words=32))
    lines = [" ".join(x.split()[:32]) for x in lee_corpus.read_text().splitlines()]
    held = [t for t in lines if len(t.split()) >= 3 and t not in seen][:80]
    assert len(held) >= 60
    truth = load_sentence_transformer(teacher).encode(held, normalize_embeddings=True)
    upper = np.triu_indices(len(held), 1)
    agreement = {}
    for label, student in students.items():
        vecs = student.encode(held)
        agreement[label] = np.corrcoef((vecs @ vecs.T)[upper], (truth @ truth.T)[upper])[0, 1]
    assert agreement["fitted"] > agreement["plain"] + 0.02, agreement


def test_cli_refuses_a_negative_fit_size(tmp_path: Path, monkeypatch, capsys) -> None:
    from embedops.cli.main import main
    from embedops.config import HOME_ENV

    monkeypatch.setenv(HOME_ENV, str(tmp_path / "ws"))
    assert main(["-q", "distill", "minilm", "--name", "s", "--fit-texts", "-1"]) != 0
    assert "--fit-texts must be >= 0" in capsys.readouterr().err
