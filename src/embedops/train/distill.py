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
    left out; ``sif_coefficient``: the ``a`` of SIF weighting. ``fit_texts``: corpus lines
    (a seeded sample, each cut to ``fit_max_words``) whose teacher vectors the token rows are
    refitted to (0: no fitting, the plain model2vec table; needs a corpus); ``fit_ridge``: how
    strongly the fit is pulled back to the transformer's own word vectors (relative to each
    word's share of the fitting texts);
    ``fit_iterations``: conjugate-gradient steps of the fit.
    """

    dim: int | None = 256
    max_corpus_words: int = 100_000
    min_count: int = 3
    sif_coefficient: float = 3e-4
    tokenizer_words: bool = True
    batch_size: int = 512
    seed: int = 0
    fit_texts: int = 0
    fit_max_words: int = 48
    fit_ridge: float = 1.0
    fit_iterations: int = 30

    def __post_init__(self) -> None:
        for name in (
            "max_corpus_words",
            "min_count",
            "batch_size",
            "seed",
            "fit_texts",
            "fit_max_words",
            "fit_iterations",
        ):
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
                "3e-4 works well",
            )

        if isinstance(self.fit_ridge, bool) or not (
            isinstance(self.fit_ridge, int | float) and self.fit_ridge > 0
        ):
            raise InvalidInput(f"fit_ridge must be > 0, got {self.fit_ridge!r}")

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


def sample_texts(path: Path, n: int, seed: int, max_words: int) -> list[str]:
    """A seeded uniform sample of ``n`` corpus lines with >= 3 words, each cut to ``max_words``.

    One pass (reservoir sampling), so the corpus is never held in memory.
    """
    rng = np.random.default_rng(seed)
    chosen: list[str] = []
    seen = 0
    try:
        with _open_text(path) as fh:
            for line in fh:
                words = line.split()
                if len(words) < 3:
                    continue
                seen += 1
                slot = seen - 1 if seen <= n else int(rng.integers(seen))
                if slot < n:
                    text = " ".join(words[:max_words])
                    if seen <= n:
                        chosen.append(text)
                    else:
                        chosen[slot] = text
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise CorpusError(
            f"cannot read corpus {path}: {exc}", "pass a UTF-8 text file (optionally .xz/.gz/.bz2)"
        ) from exc
    return chosen


def teacher_vectors(model: Any, texts: list[str], batch_size: int) -> FloatArray:
    """The transformer's own unit-length sentence vectors of ``texts`` (the fitting targets)."""
    out = model.encode(
        texts,
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return np.ascontiguousarray(out, dtype=np.float32)


def bag_of_words(texts: list[str], key_to_index: dict[str, int], spec: TokenizerSpec) -> Any:
    """CSR matrix (texts x vocabulary): each row the mean over the text's known tokens, as
    ``StaticEncoder``'s mean pooling takes it (unknown tokens skipped, empty rows stay zero)."""
    from scipy import sparse

    indptr: list[int] = [0]
    cols: list[int] = []
    for text in texts:
        cols.extend(r for r in map(key_to_index.get, spec.tokenize(text)) if r is not None)
        indptr.append(len(cols))
    counts = np.diff(indptr)
    data = np.repeat(1.0 / np.maximum(counts, 1), counts).astype(np.float32)
    bags = sparse.csr_matrix(
        (data, np.asarray(cols, dtype=np.int64), np.asarray(indptr, dtype=np.int64)),
        shape=(len(texts), len(key_to_index)),
    )
    bags.sum_duplicates()
    return bags


def fit_rows(
    rows: FloatArray, bags: Any, targets: FloatArray, ridge: float, iterations: int
) -> FloatArray:
    """Token rows whose pooled mean best matches the teacher: ridge least squares toward the
    initial rows, ``min ||bags @ E - targets||^2 + sum_t ridge * d_t * ||E_t - rows_t||^2``.

    ``d_t`` is word t's own weight in the fit (the diagonal of ``bags.T @ bags``), so the
    pull back is relative to the evidence: a plain ridge let the words found in every text
    ("the", "of") carry the teachers' common direction and lost 2-3 points of recall@10 on the
    revdict dev queries. ``rows`` are the effective token vectors (weights folded in),
    rescaled first so that pooled texts have unit mean norm like the targets. Solved by
    conjugate gradients, one system per dimension side by side; rows of words absent from
    ``bags`` keep their (rescaled) initial value.
    """
    used = np.flatnonzero(np.asarray(bags.getnnz(axis=0)) > 0)
    pooled_norm = float(np.linalg.norm(bags @ rows, axis=1).mean()) if used.size else 1.0
    start = rows.astype(np.float64) / max(pooled_norm, 1e-12)
    if used.size == 0:
        return start.astype(np.float32)
    x = bags[:, used].astype(np.float64)
    xt = x.T.tocsr()
    init = start[used]
    pull: np.ndarray = ridge * np.asarray(x.multiply(x).sum(axis=0)).reshape(-1, 1)

    def apply(e: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.asarray(xt @ (x @ e)) + pull * e
        return out

    rhs = np.asarray(xt @ targets.astype(np.float64)) + pull * init
    solution = init.copy()
    residual = rhs - apply(solution)
    direction = residual.copy()
    rs = np.einsum("ij,ij->j", residual, residual)
    for _ in range(iterations):
        step = apply(direction)
        alpha = rs / np.maximum(np.einsum("ij,ij->j", direction, step), 1e-30)
        solution += alpha * direction
        residual -= alpha * step
        rs_new = np.einsum("ij,ij->j", residual, residual)
        direction = residual + (rs_new / np.maximum(rs, 1e-30)) * direction
        rs = rs_new
    out = start.copy()
    out[used] = solution
    return out.astype(np.float32)


def distill_table(
    model: Any,
    model_ref: str,
    counts: collections.Counter[str] | None,
    config: DistillConfig,
    spec: TokenizerSpec,
    fit: tuple[list[str], FloatArray] | None = None,
    word_vectors: FloatArray | None = None,
) -> StaticVectors:
    """Embed the vocabulary with ``model``, fit it to the teacher, reduce it by PCA, attach
    SIF weights.

    ``fit``: texts and the teacher's unit vectors of them; when given, the SIF-weighted rows
    are refitted so that their pooled means match the teacher (``fit_rows``). ``word_vectors``:
    the vocabulary's transformer vectors when already computed (in vocabulary order).
    """
    base = tokenizer_words(model.tokenizer.get_vocab(), spec)
    words, probabilities = build_vocabulary(base, counts, config)
    vectors = (
        embed_words(model, words, config.batch_size) if word_vectors is None else word_vectors
    )
    if len(vectors) != len(words):
        raise InvalidInput(
            f"{len(vectors)} word vectors were given for a vocabulary of {len(words)} words",
            "compute them again for this vocabulary",
        )
    if config.dim is not None and config.dim > vectors.shape[1]:
        raise InvalidInput(
            f"--dim {config.dim} is larger than the transformer's dim {vectors.shape[1]}",
            f"pick a dim <= {vectors.shape[1]}",
        )
    weights = sif_weights(probabilities, config.sif_coefficient)
    return _reduce(_fitted(words, vectors, weights, spec, config, fit), weights, config, model_ref)


def _fitted(
    words: list[str],
    vectors: FloatArray,
    weights: np.ndarray,
    spec: TokenizerSpec,
    config: DistillConfig,
    fit: tuple[list[str], FloatArray] | None,
) -> tuple[list[str], FloatArray]:
    """The effective token rows (weights folded in), refitted on ``fit`` when given."""
    rows = vectors * weights[:, None]
    if fit is None:
        return words, rows
    texts, targets = fit
    bags = bag_of_words(texts, {w: i for i, w in enumerate(words)}, spec)
    return words, fit_rows(rows, bags, targets, config.fit_ridge, config.fit_iterations)


def _reduce(
    fitted: tuple[list[str], FloatArray],
    weights: np.ndarray,
    config: DistillConfig,
    model_ref: str,
) -> StaticVectors:
    """Word vectors (the effective rows without their SIF weights), reduced by PCA.

    PCA is fitted on the unweighted vectors: centring the weighted rows would shift frequent
    words by the full mean despite their small weight (recall@10 0.340 instead of 0.400 on the
    revdict dev queries).
    """
    words, rows = fitted
    vectors = rows / weights[:, None]
    if config.dim is not None:
        pca = fit_pca(vectors, config.dim, model_ref, seed=config.seed)
        vectors = pca.apply(vectors, model_ref)
    return StaticVectors(index_to_key=words, vectors=vectors, weights=weights)


def distill(
    registry: Registry,
    parent_ref: str,
    name: str,
    config: DistillConfig | None = None,
    corpus: Path | None = None,
    word_vectors: FloatArray | None = None,
) -> ModelVersion:
    """Distill the transformer ``parent_ref`` into a static model published as ``name``.

    The manifest records the parent (lineage), the config, the vocabulary sources and the
    corpus checksum when a corpus was used. ``word_vectors``: the transformer's vectors of the
    vocabulary (``build_vocabulary`` order) when already computed, e.g. cached by a benchmark.
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
    fit = None
    if corpus is not None and config.fit_texts > 0:
        texts = sample_texts(corpus, config.fit_texts, config.seed, config.fit_max_words)
        with progress_bar("teacher vectors of the fitting texts", None, unit="texts"):
            fit = (texts, teacher_vectors(model, texts, 64))
    table = distill_table(model, parent.ref, counts, config, spec, fit, word_vectors)
    params = {
        **config.to_dict(),
        "teacher_dim": parent.dim,
        "corpus_words": counts is not None,
        "fitted_texts": len(fit[0]) if fit is not None else 0,
    }
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
