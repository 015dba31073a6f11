"""Static training on gensim's bundled Lee corpus: word2vec, fastText, redaction, phrases,
manifests, and bad configurations."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from embedops.errors import CorpusError, InvalidInput
from embedops.models.registry import Registry
from embedops.models.static import StaticVectors
from embedops.text.phrases import PHRASES_FILE, PhraseTable
from embedops.text.tokenize import TokenizerSpec
from embedops.train import TrainConfig, train_static

FAST = dict(epochs=2, dim=32, min_count=2, workers=1)


def test_word2vec_publishes_a_complete_manifest(registry: Registry, lee_corpus: Path) -> None:
    result = train_static(lee_corpus, "lee", TrainConfig(**FAST), registry)
    mv = registry.get("lee", verify=True)
    m = mv.manifest
    assert mv.ref == result.version.ref == "lee@1" and mv.kind == "word2vec" and mv.dim == 32
    assert m["corpus_tokens"] == result.corpus.tokens > 50_000
    assert m["corpus_sha256"] == result.corpus.sha256 and len(m["corpus_sha256"]) == 64
    assert m["params"] == TrainConfig(**FAST).to_dict()
    assert TokenizerSpec(**m["tokenizer"]).fingerprint() == m["tokenizer_fingerprint"]
    assert m["training"]["words_per_second"] > 0 and m["training"]["train_seconds"] > 0
    table = StaticVectors.read(mv)
    assert m["vocab_size"] == len(table) > 1000 and table.counts is not None
    assert not table.has_subwords
    assert np.all(np.isfinite(table.vectors))


def test_same_seed_single_worker_is_deterministic(registry: Registry, lee_corpus: Path) -> None:
    a = train_static(lee_corpus, "a", TrainConfig(**FAST, seed=7), registry).version
    b = train_static(lee_corpus, "b", TrainConfig(**FAST, seed=7), registry).version
    assert np.array_equal(StaticVectors.read(a).vectors, StaticVectors.read(b).vectors)


def test_fasttext_gives_out_of_vocabulary_words_a_vector(
    registry: Registry, lee_corpus: Path
) -> None:
    config = TrainConfig(model="fasttext", bucket=20_000, **FAST)
    mv = train_static(lee_corpus, "ft", config, registry).version
    table = StaticVectors.read(mv)
    assert mv.kind == "fasttext" and table.has_subwords and table.bucket == 20_000
    assert (table.minn, table.maxn) == (3, 6)
    assert mv.manifest["tokenizer"]["subword_min"] == 3
    assert "governmentalish" not in table
    assert np.any(table.vector("governmentalish"))


def test_redaction_is_on_by_default(registry: Registry, tmp_path: Path) -> None:
    lines = [f"mail alice{i}@example.com or call 555-123-{1000 + i} today" for i in range(30)]
    corpus = tmp_path / "pii.txt"
    corpus.write_text("\n".join(lines))
    table = StaticVectors.read(train_static(corpus, "pii", TrainConfig(**FAST), registry).version)
    assert "<email>" in table and "<phone>" in table
    assert not any("alice" in w or "example" in w for w in table.index_to_key)
    raw = train_static(corpus, "raw", TrainConfig(**FAST, redact=()), registry).version
    assert "example" in StaticVectors.read(raw)
    assert raw.manifest["tokenizer"]["redact"] == []


def test_phrases_are_learned_stored_as_json_and_fingerprinted(
    registry: Registry, lee_corpus: Path
) -> None:
    config = TrainConfig(**FAST, phrases=True, phrase_min_count=3)
    mv = train_static(lee_corpus, "ph", config, registry).version
    table = PhraseTable.for_version(mv)
    assert table is not None and len(table) > 10
    assert mv.manifest["tokenizer"]["phrases_sha256"] == table.sha256
    json.loads(mv.file(PHRASES_FILE).read_text())
    vectors = StaticVectors.read(mv)
    merged = [a + "_" + b for a, b, _ in table.pairs if a + "_" + b in vectors]
    assert merged, "phrases appear in the vocabulary"
    a, b, _ = table.pairs[0]
    assert table.apply(["x", a, b, "y"]) == ["x", f"{a}_{b}", "y"]
    plain = train_static(lee_corpus, "plain", TrainConfig(**FAST), registry).version
    assert plain.tokenizer_fingerprint != mv.tokenizer_fingerprint
    assert PhraseTable.for_version(plain) is None


def test_bad_name_fails_before_any_work(registry: Registry, lee_corpus: Path) -> None:
    with pytest.raises(InvalidInput, match="invalid model name"):
        train_static(lee_corpus, "no/slash", TrainConfig(**FAST), registry)
    assert registry.list() == []


def test_failed_training_leaves_no_version_and_no_scratch(
    registry: Registry, tmp_path: Path
) -> None:
    corpus = tmp_path / "empty.txt"
    corpus.write_text("1234 5678\n")
    with pytest.raises(CorpusError, match="no tokens"):
        train_static(corpus, "e", TrainConfig(**FAST), registry)
    assert registry.list() == []
    assert list(registry.workspace.staging_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("model", "glove", "unknown model"),
        ("dim", 0, "dim must be >= 1"),
        ("epochs", -1, "epochs must be >= 1"),
        ("sample", 1.5, "sample must be in"),
        ("min_alpha", 0.5, "min_alpha"),
        ("redact", ("email", "ssn"), "unknown redaction kind"),
        ("negative", 0, "negative must be >= 1"),
    ],
)
def test_bad_config_is_refused(field: str, value: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        TrainConfig(**{field: value})


def test_fasttext_needs_a_valid_ngram_range() -> None:
    with pytest.raises(InvalidInput, match="min_n <= max_n"):
        TrainConfig(model="fasttext", min_n=5, max_n=3)


def test_config_round_trips_through_its_constructor() -> None:
    config = TrainConfig(model="fasttext", sg=True, redact=("phone", "email"))
    assert TrainConfig(**config.to_dict()) == config
    assert TrainConfig(**asdict(config)) == config


def test_defaults_resolve_alpha_and_saved_vectors_by_architecture() -> None:
    cbow, sg = TrainConfig(), TrainConfig(sg=True)
    assert (cbow.alpha, sg.alpha) == (0.075, 0.025)
    assert TrainConfig(alpha=0.1).alpha == 0.1
    assert cbow.saved_vectors == sg.saved_vectors == "sum"
    assert TrainConfig(model="fasttext").saved_vectors == "unit-sum"
    assert TrainConfig(model="fasttext", vectors="sum").saved_vectors == "sum"
    assert TrainConfig(vectors="input").saved_vectors == "input"
    assert TrainConfig(**cbow.to_dict()) == cbow
    with pytest.raises(InvalidInput, match="unknown vectors"):
        TrainConfig(vectors="both")


def test_saved_vectors_sum_adds_the_output_vectors(registry: Registry, lee_corpus: Path) -> None:
    one = dict(FAST, seed=3)
    summed = train_static(lee_corpus, "s", TrainConfig(**one), registry).version
    inputs = train_static(lee_corpus, "i", TrainConfig(**one, vectors="input"), registry).version
    a, b = StaticVectors.read(summed), StaticVectors.read(inputs)
    assert a.index_to_key == b.index_to_key
    assert not np.allclose(a.vectors, b.vectors)
    assert summed.manifest["params"]["vectors"] == "auto"


@pytest.mark.parametrize("block", [1 << 30, 64])
def test_shuffle_lines_keeps_every_line_in_a_seeded_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    from embedops.train import word2vec

    monkeypatch.setattr(word2vec, "SHUFFLE_BLOCK", block)  # 64 bytes: several buckets
    lines = [f"line {i} of the corpus\n" for i in range(200)]
    orders = []
    for name in ("a", "b"):
        path = tmp_path / name
        path.write_text("".join(lines)[:-1])  # no final newline
        word2vec.shuffle_lines(path, seed=5)
        orders.append(path.read_text().splitlines(keepends=True))
        assert list(tmp_path.glob(f"{name}.*")) == []
    assert orders[0] == orders[1] != lines
    assert sorted(orders[0]) == sorted(lines)
