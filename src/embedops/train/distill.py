"""Distill a static model from a transformer, model2vec-style.

Each vocabulary word is run through the transformer on its own; its output (mean pooled) becomes
the word's vector. The table is reduced by PCA and every word gets a SIF weight
``a / (a + p(word))`` (p from corpus counts, or from a Zipf law over the tokenizer's ranks when no
corpus is given), so pooling a sentence is a weighted mean of table rows: no transformer needed.

The vocabulary is made of words as the project's word tokenizer splits them (the transformer
tokenizer's whole-word entries plus the frequent words of a corpus), so the default
``TokenizerSpec`` reproduces at encode time exactly how the table was keyed.
"""

from __future__ import annotations

import bz2
import collections
import gzip
import lzma
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, cast

import numpy as np

from embedops.errors import CorpusError, InvalidInput
from embedops.models.pooling import PoolingConfig
from embedops.models.registry import ModelVersion, Registry
from embedops.models.static import StaticVectors, publish_static
from embedops.progress import progress_bar
from embedops.text.tokenize import TokenizerSpec
from embedops.types import FloatArray
from embedops.vectors.postprocess import fit_pca

_SPECIAL = re.compile(r"^\[[A-Za-z0-9_]+\]$")


@dataclass(frozen=True)
class DistillConfig:
    """Distillation settings; round-trips ``DistillConfig(**cfg.to_dict())``.

    ``dim``: PCA dimensions (None keeps the transformer's); ``max_corpus_words``: most frequent
    corpus words added to the tokenizer's words; ``min_count``: corpus words rarer than this are
    left out; ``sif_coefficient``: the ``a`` of SIF weighting.
    """

    dim: int | None = 256
    max_corpus_words: int = 100_000
    min_count: int = 3
    sif_coefficient: float = 1e-4
    tokenizer_words: bool = True
    batch_size: int = 512
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("max_corpus_words", "min_count", "batch_size", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInput(f"{name} must be a non-negative integer, got {value!r}")
        if self.dim is not None and (
            isinstance(self.dim, bool) or not isinstance(self.dim, int) or self.dim < 1
        ):
            raise InvalidInput(f"dim must be a positive integer or null, got {self.dim!r}")
        if self.batch_size < 1:
            raise InvalidInput("batch_size must be at least 1")
        if not isinstance(self.sif_coefficient, int | float) or not 0 < self.sif_coefficient < 1:
            raise InvalidInput(
                f"sif_coefficient must be in (0, 1), got {self.sif_coefficient!r}",
                "1e-4 works well",
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def corpus_counts(path: Path, spec: TokenizerSpec) -> collections.Counter[str]:
    """Token counts of a text corpus (one document per line; ``.xz``/``.gz``/``.bz2`` ok)."""
    counts: collections.Counter[str] = collections.Counter()
    try:
        with _open_text(path) as fh, progress_bar("counting words", None, unit="lines") as bar:
            for line in fh:
                counts.update(spec.tokenize(line))
                bar.advance()
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise CorpusError(
            f"cannot read corpus {path}: {exc}", "pass a UTF-8 text file (optionally .xz/.gz/.bz2)"
        ) from exc
    if not counts:
        raise CorpusError(
            f"corpus {path} has no words", "pass a text file with one document per line"
        )
    return counts


def _open_text(path: Path) -> IO[str]:
    opener: Any = {".xz": lzma.open, ".gz": gzip.open, ".bz2": bz2.open}.get(path.suffix, open)
    return cast(IO[str], opener(path, "rt", encoding="utf-8"))


def tokenizer_words(vocab: dict[str, int], spec: TokenizerSpec) -> list[str]:
    """Whole-word entries of a transformer vocabulary that ``spec`` keeps as one token, by id."""
    out = []
    for token, _ in sorted(vocab.items(), key=lambda kv: kv[1]):
        if token.startswith("##") or _SPECIAL.match(token):
            continue
        if spec.tokenize(token) == [token]:
            out.append(token)
    return out


def build_vocabulary(
    base: list[str], counts: collections.Counter[str] | None, config: DistillConfig
) -> tuple[list[str], np.ndarray]:
    """The words to embed (tokenizer words, then frequent corpus words) and their probabilities.

    With counts, ``p(w) = (count + 1) / total``; without, a Zipf law over the base order.
    """
    words = list(base) if config.tokenizer_words else []
    if counts is not None:
        frequent = [
            w for w, c in counts.most_common(config.max_corpus_words) if c >= config.min_count
        ]
        words = list(dict.fromkeys(words + frequent))
    if not words:
        raise InvalidInput(
            "the distillation vocabulary is empty",
            "keep tokenizer_words on or pass a corpus with words above min_count",
        )
    if counts is not None:
        raw = np.array([counts.get(w, 0) for w in words], dtype=np.float64) + 1.0
    else:
        raw = 1.0 / np.arange(1, len(words) + 1, dtype=np.float64)
    return words, raw / raw.sum()


def sif_weights(probabilities: np.ndarray, coefficient: float) -> np.ndarray:
    """SIF weights ``a / (a + p)``: frequent words count less in a pooled sentence."""
    return (coefficient / (coefficient + probabilities)).astype(np.float32)


def embed_words(model: Any, words: list[str], batch_size: int) -> FloatArray:
    """Transformer output for each word on its own (mean pooled, unnormalized), in order."""
    import torch

    out = np.empty((len(words), model.get_embedding_dimension()), dtype=np.float32)
    # Batches of similar length waste less compute on padding.
    order = sorted(range(len(words)), key=lambda i: len(words[i]))
    with (
        progress_bar("embedding vocabulary", len(words), unit="words") as bar,
        torch.inference_mode(),
    ):
        for start in range(0, len(words), batch_size):
            rows = order[start : start + batch_size]
            features = model.preprocess([words[i] for i in rows])
            hidden = model.forward(dict(features))["token_embeddings"]
            mask = features["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out[rows] = ((hidden * mask).sum(1) / mask.sum(1)).numpy()
            bar.advance(len(rows))
    return out


def distill_table(
    model: Any,
    model_ref: str,
    counts: collections.Counter[str] | None,
    config: DistillConfig,
    spec: TokenizerSpec,
) -> StaticVectors:
    """Embed the vocabulary with ``model``, reduce it by PCA and attach SIF weights."""
    base = tokenizer_words(model.tokenizer.get_vocab(), spec)
    words, probabilities = build_vocabulary(base, counts, config)
    vectors = embed_words(model, words, config.batch_size)
    if config.dim is not None:
        if config.dim > vectors.shape[1]:
            raise InvalidInput(
                f"--dim {config.dim} is larger than the transformer's dim {vectors.shape[1]}",
                f"pick a dim <= {vectors.shape[1]}",
            )
        vectors = fit_pca(vectors, config.dim, model_ref, seed=config.seed).apply(
            vectors, model_ref
        )
    return StaticVectors(
        index_to_key=words,
        vectors=vectors,
        weights=sif_weights(probabilities, config.sif_coefficient),
    )


def distill(
    registry: Registry,
    parent_ref: str,
    name: str,
    config: DistillConfig | None = None,
    corpus: Path | None = None,
) -> ModelVersion:
    """Distill the transformer ``parent_ref`` into a static model published as ``name``.

    The manifest records the parent (lineage), the config, the vocabulary sources and the
    corpus checksum when a corpus was used.
    """
    from embedops.fsio import sha256_file
    from embedops.train.finetune import load_sentence_transformer

    config = config or DistillConfig()
    parent = registry.get(parent_ref, verify=True)
    if parent.kind != "transformer":
        raise InvalidInput(
            f"{parent.ref} is a {parent.kind} model; distillation needs a transformer",
            "import one with 'embedops import' (e.g. MiniLM) and distill that",
        )
    spec = TokenizerSpec()
    counts = corpus_counts(corpus, spec) if corpus is not None else None
    model = load_sentence_transformer(parent)
    table = distill_table(model, parent.ref, counts, config, spec)
    params = {**config.to_dict(), "teacher_dim": parent.dim, "corpus_words": counts is not None}
    # "mean" pooling scales each word by the table's SIF weights (see models.pooling).
    return publish_static(
        registry,
        name,
        table,
        kind="distilled",
        spec=spec,
        params=params,
        parent=parent.ref,
        pooling=PoolingConfig(method="mean").to_dict(),
        training_data_sha256=sha256_file(corpus) if corpus is not None else None,
    )
