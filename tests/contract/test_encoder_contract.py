"""One contract, every Encoder: static (word2vec and fastText, pooled), transformer (torch and
ONNX) and distilled encoders, each loaded from a published ModelVersion.

The contract (``embedops.types.Encoder``): ``encode(texts)`` returns float32 ``(n, dim)``,
finite; the same input gives the same output; a text's vector does not depend on the batch it
was encoded in (exactly for static models, cosine >= 0.9999 for transformers, whose padded
batches change the float arithmetic); an empty list gives ``(0, dim)``; empty and very long
texts are encoded, not refused; ``version`` (``name@N``) and ``tokenizer_fingerprint`` are set
and stable.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from embedops.config import Workspace
from embedops.models.loader import load_encoder
from embedops.models.registry import ModelVersion, Registry
from embedops.types import Encoder
from transformer_helpers import lee_sentences, shared_minilm

LONG_TEXT = ("The river runs past the old mill to the sea, and the town follows it. " * 300)[
    :20_000
]


@dataclass(frozen=True)
class Case:
    """An encoder under test, the ModelVersion it was loaded from, and how batch-invariant it
    must be (``min_cosine`` None: bit-identical)."""

    encoder: Encoder
    mv: ModelVersion
    min_cosine: float | None
    reload: Callable[[], Encoder]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """Real sentences of varied length, plus words no vocabulary has, punctuation and accents."""
    return [
        *lee_sentences(10),
        "qwzxv flurbish glorptastic",
        "Café déjà-vu: naïve façade!",
        "a",
        "Fire, fire... FIRE?!",
    ]


@pytest.fixture(scope="module")
def static_registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    return Registry(Workspace(tmp_path_factory.mktemp("encoder-contract") / "ws"))


def _publish_gensim(registry: Registry, lee_corpus: Path, kind: str) -> ModelVersion:
    from gensim.models import FastText, Word2Vec

    from embedops.models.static import StaticVectors, publish_static
    from embedops.text.tokenize import TokenizerSpec

    spec = TokenizerSpec()
    lines = [line for line in lee_corpus.read_text().splitlines() if line.strip()]
    sentences = [spec.tokenize(line) for line in lines[:120]]
    if kind == "fasttext":
        model = FastText(sentences, vector_size=12, min_count=2, epochs=1, seed=3, workers=1,
                         bucket=3000)  # fmt: skip
    else:
        model = Word2Vec(sentences, vector_size=16, min_count=2, epochs=1, seed=3, workers=1)
    table = StaticVectors.from_gensim(model.wv)
    return publish_static(registry, f"contract-{kind}", table, kind=kind, spec=spec)


def _distilled(factory: pytest.TempPathFactory, lee_corpus: Path) -> ModelVersion:
    """MiniLM distilled into a small static model, in a workspace of its own (the shared
    MiniLM workspace stays as other tests expect it)."""
    from embedops.models.transformer import import_transformer
    from embedops.train.distill import DistillConfig, distill

    registry = Registry(Workspace(factory.mktemp("encoder-contract-distill") / "ws"))
    import_transformer(registry, "minilm", "minilm", onnx=False)
    config = DistillConfig(dim=32, tokenizer_words=False, min_count=4, max_corpus_words=400)
    return distill(registry, "minilm", "contract-distilled", config, corpus=lee_corpus)


def _transformer_case(factory: pytest.TempPathFactory, backend: str) -> Case:
    from embedops.models.transformer import TransformerEncoder

    mv = shared_minilm(factory)

    def reload() -> Encoder:
        return TransformerEncoder.from_version(mv, backend=backend, threads=1)

    return Case(reload(), mv, 0.9999, reload)


@pytest.fixture(
    scope="module",
    params=[
        "word2vec",
        "fasttext",
        pytest.param("distilled", marks=pytest.mark.transformer),
        pytest.param("torch", marks=pytest.mark.transformer),
        pytest.param("onnx", marks=pytest.mark.transformer),
        pytest.param("openvino-int8", marks=[pytest.mark.transformer, pytest.mark.skipif(
            importlib.util.find_spec("openvino") is None, reason="openvino not installed")]),
    ],
)
def case(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    static_registry: Registry,
    lee_corpus: Path,
) -> Case:
    kind = str(request.param)
    if kind in ("torch", "onnx", "openvino-int8"):
        return _transformer_case(tmp_path_factory, kind)
    if kind == "distilled":
        mv = _distilled(tmp_path_factory, lee_corpus)
    else:
        mv = _publish_gensim(static_registry, lee_corpus, kind)
    return Case(load_encoder(mv), mv, None, lambda: load_encoder(mv))


def _assert_vectors(vectors: np.ndarray, n: int, dim: int) -> None:
    assert isinstance(vectors, np.ndarray)
    assert vectors.dtype == np.float32 and vectors.shape == (n, dim)
    assert np.isfinite(vectors).all()


def test_is_an_encoder_with_version_and_dim(case: Case) -> None:
    enc = case.encoder
    assert isinstance(enc, Encoder)
    assert type(enc.dim) is int and enc.dim == case.mv.dim > 0
    assert enc.version == case.mv.ref and "@" in enc.version


def test_tokenizer_fingerprint_is_set_and_stable(case: Case) -> None:
    fingerprint = case.encoder.tokenizer_fingerprint
    assert isinstance(fingerprint, str) and fingerprint
    assert fingerprint == case.mv.tokenizer_fingerprint
    assert case.encoder.tokenizer_fingerprint == fingerprint
    assert case.reload().tokenizer_fingerprint == fingerprint


def test_shape_dtype_and_determinism(case: Case, texts: list[str]) -> None:
    first = case.encoder.encode(texts)
    _assert_vectors(first, len(texts), case.encoder.dim)
    np.testing.assert_array_equal(case.encoder.encode(texts), first)
    np.testing.assert_array_equal(case.reload().encode(texts), first)


def test_a_texts_vector_does_not_depend_on_its_batch(case: Case, texts: list[str]) -> None:
    together = case.encoder.encode(texts)
    alone = np.vstack([case.encoder.encode([text]) for text in texts])
    small_batches = case.encoder.encode(texts, batch_size=3)
    for other in (alone, small_batches):
        _assert_vectors(other, len(texts), case.encoder.dim)
        if case.min_cosine is None:
            np.testing.assert_array_equal(other, together)
        else:
            cosines = np.sum(other * together, axis=1) / np.maximum(
                np.linalg.norm(other, axis=1) * np.linalg.norm(together, axis=1), 1e-12
            )
            assert cosines.min() >= case.min_cosine, cosines


def test_empty_list_gives_zero_rows(case: Case) -> None:
    _assert_vectors(case.encoder.encode([]), 0, case.encoder.dim)


def test_empty_and_very_long_texts_are_encoded(case: Case) -> None:
    assert len(LONG_TEXT) == 20_000
    vectors = case.encoder.encode(["", LONG_TEXT, "   ", "river"])
    _assert_vectors(vectors, 4, case.encoder.dim)
    assert not vectors[0].any() and not vectors[2].any()  # no token: the zero vector
    assert vectors[1].any() and vectors[3].any()
