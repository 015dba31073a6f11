"""``Embedops.models``: the model registry of a workspace as the engine's surfaces see it.

Resolve, load and use model versions (cached by ``ModelHub``), and make new ones: train static
vectors, import vectors or a sentence-transformers model, distill, fine-tune, evaluate, export.
The CLI, the HTTP server and Python callers all come through here.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embedops.engine.checks import check_texts
from embedops.engine.models import EncoderWrapper, ModelHub
from embedops.errors import InvalidInput, ModelNotFound
from embedops.models.registry import ModelVersion, Registry
from embedops.types import Encoder

if TYPE_CHECKING:
    from embedops.models.static import StaticVectors
    from embedops.train.distill import DistillConfig
    from embedops.train.finetune import FinetuneConfig
    from embedops.train.word2vec import TrainConfig, TrainResult


@dataclass(frozen=True)
class TokenCounts:
    """Tokens of each text as its model's own tokenizer counts them (see
    ``Models.count_tokens``); ``oov``: how many of them are out of the vocabulary (static
    models; None for subword tokenizers, which have no out-of-vocabulary tokens)."""

    tokens: tuple[int, ...]
    oov: tuple[int, ...] | None

    @property
    def total(self) -> int:
        """Tokens of every text together."""
        return sum(self.tokens)


class Models:
    """The model versions of one workspace (``name``, ``name@N`` or ``name@latest``)."""

    def __init__(self, registry: Registry, hub: ModelHub) -> None:
        self._registry, self._hub = registry, hub

    # -- reading -------------------------------------------------------------------------------
    def resolve(self, ref: str) -> ModelVersion:
        """The ModelVersion ``ref`` names (cached until its files change)."""
        return self._hub.resolve(ref)

    def names(self) -> builtins.list[str]:
        """Model names in the registry, sorted."""
        return self._registry.names()

    def list(self, name: str | None = None) -> builtins.list[ModelVersion]:
        """Every version (of ``name``), oldest first."""
        return self._registry.list(name)

    def show(self, ref: str) -> ModelVersion:
        """The version ``ref`` names, after verifying the checksums of its files."""
        return self._registry.get(ref, verify=True)

    def delete(self, ref: str) -> ModelVersion:
        """Delete one version (``name@N``)."""
        return self._registry.delete(ref)

    def default(self) -> str:
        """The model used when none is named: the only model in the registry."""
        names = self._registry.names()
        if len(names) != 1:
            raise ModelNotFound(
                f"no model named and the registry holds {len(names)} "
                f"({', '.join(names) or 'none'})",
                "name the model to use",
            )
        return names[0]

    # -- using ---------------------------------------------------------------------------------
    def encoder(self, ref: str, backend: str | None = None, threads: int | None = None) -> Encoder:
        """The Encoder of ``ref`` (cached). ``backend`` (torch, onnx, onnx-int8) and
        ``threads`` load a transformer afresh with those settings instead."""
        if backend is None and threads is None:
            return self._hub.encoder(ref)
        mv = self.resolve(ref)
        if mv.kind != "transformer":
            raise InvalidInput(
                f"backend and threads apply to transformer models; {mv.ref} is '{mv.kind}'",
                "leave them out for static models",
            )
        from embedops.models.transformer import TransformerEncoder

        return TransformerEncoder.from_version(mv, backend=backend, threads=threads)

    def embed(self, texts: Sequence[str], ref: str) -> np.ndarray:
        """float32 ``(len(texts), dim)`` vectors of ``texts`` under ``ref``."""
        return self._hub.embed(texts, ref)

    def encode_queries(self, texts: Sequence[str], ref: str) -> np.ndarray:
        """Like ``embed``, through the query-vector cache."""
        return self._hub.encode_queries(texts, ref)

    def table(self, ref: str) -> StaticVectors:
        """The word-vector table of a static model version (cached)."""
        return self._hub.table(ref)  # type: ignore[no-any-return]

    def wrap_encoders(self, wrapper: EncoderWrapper | None) -> None:
        """Hand out ``wrapper(encoder)`` for every encoder from now on (the server's cache)."""
        self._hub.wrap_encoders(wrapper)

    # -- tokens and dimensions ---------------------------------------------------------------
    def count_tokens(self, texts: Sequence[str], ref: str) -> TokenCounts:
        """Tokens of each text under ``ref``'s own tokenizer. Transformers: the wordpiece ids
        the model runs on, ``[CLS]`` and ``[SEP]`` included, after truncation to its
        ``max_seq_length`` (0 for an empty text, which is not run). Static models: the tokens
        its TokenizerSpec splits out, and how many of them are out of the vocabulary."""
        texts = check_texts(texts)
        encoder = self._hub.encoder(ref)
        batcher = getattr(encoder, "batcher", None)
        if batcher is not None:
            return _wordpiece_counts(batcher, texts)
        spec, table = getattr(encoder, "spec", None), getattr(encoder, "table", None)
        if spec is not None and table is not None:
            return _static_counts(spec, table.key_to_index, texts)
        return TokenCounts(tuple(len(t.split()) for t in texts), None)

    def decode_tokens(self, ids: Sequence[Sequence[int]], ref: str) -> builtins.list[str]:
        """Texts of token-id lists, decoded with ``ref``'s own tokenizer (special tokens
        dropped), so that embedding them embeds what the ids stand for. Static models have no
        token ids, and ids outside the vocabulary name nothing: both are InvalidInput."""
        mv = self.resolve(ref)
        batcher = getattr(self._hub.encoder(mv.ref), "batcher", None)
        if batcher is None:
            raise InvalidInput(
                f"{mv.ref} is a {mv.kind} model: its tokenizer has no token ids",
                "send the input as text",
            )
        tokenizer = batcher.tokenizer
        size = int(tokenizer.get_vocab_size())
        rows = [builtins.list(row) for row in ids]
        for pos, row in enumerate(rows):
            if row and not 0 <= min(row) <= max(row) < size:
                bad = next(t for t in row if not 0 <= t < size)
                raise InvalidInput(
                    f"token-id list {pos} holds {bad}, outside the vocabulary of {mv.ref} "
                    f"(ids 0..{size - 1})",
                    f"send ids of {mv.ref}'s own tokenizer, or send text",
                )
        return [str(text) for text in tokenizer.decode_batch(rows, skip_special_tokens=True)]

    def check_dimensions(self, ref: str, dimensions: int) -> int:
        """``dimensions`` if vectors of ``ref`` may be cut to it, else InvalidInput naming the
        allowed values: the model's own dim always; 1..dim when its manifest says it was
        trained for Matryoshka truncation (``matryoshka: true``)."""
        from embedops.vectors.postprocess import supports_matryoshka

        mv = self.resolve(ref)
        if dimensions == mv.dim:
            return dimensions
        if not supports_matryoshka(mv):
            raise InvalidInput(
                f"{mv.ref} is not Matryoshka-trained, so its vectors cannot be cut to "
                f"{dimensions} dimensions; dimensions must be {mv.dim} (its dim) or left out",
                "use a model whose manifest sets matryoshka: true to get shorter vectors",
            )
        if not 1 <= dimensions <= mv.dim:
            raise InvalidInput(
                f"dimensions must be in 1..{mv.dim} for {mv.ref}, got {dimensions}")
        return dimensions

    def truncate(self, vectors: np.ndarray, ref: str, dimensions: int) -> np.ndarray:
        """``vectors`` of ``ref`` cut to their first ``dimensions`` components and L2-normalized
        again (Matryoshka); unchanged when ``dimensions`` is the model's dim. See
        ``check_dimensions`` for what is allowed."""
        from embedops.vectors.postprocess import truncate

        mv = self.resolve(ref)
        if self.check_dimensions(mv.ref, dimensions) == mv.dim:
            return vectors
        return truncate(vectors, dimensions, matryoshka=True, model_ref=mv.ref)

    # -- making --------------------------------------------------------------------------------
    def train(self, corpus: str | Path, name: str, config: TrainConfig | None = None
              ) -> TrainResult:
        """Train word2vec/fastText vectors on ``corpus`` and publish a new version of
        ``name``."""
        from embedops.train.word2vec import TrainConfig, train_static

        config = config or TrainConfig()
        result = train_static(Path(corpus), name, config, self._registry)
        # Small data gives silent garbage (every neighbour at cosine 0.999): say so at once.
        result.summary["warnings"] = degeneracy_warnings(
            self.table(result.version.ref), result.corpus.tokens, config.dim,
            small_corpus_settings=config.sg and config.epochs >= 20)
        return result

    def import_vectors(
        self, path: str | Path, fmt: str = "word2vec-text", name: str | None = None,
        limit: int | None = None, lowercase: bool | None = None,
        sif_texts: Sequence[str] | None = None,
    ) -> ModelVersion:
        """Import a word-vector file (word2vec text/binary, GloVe, fastText .vec) as a new
        version of ``name`` (default: the file's stem)."""
        from embedops.models.formats import publish_import

        path = Path(path)
        return publish_import(self._registry, path, fmt, name or _stem(path), limit=limit,
                              lowercase=lowercase,
                              sif_texts=list(sif_texts) if sif_texts is not None else None)

    def import_transformer(self, source: str, name: str | None = None,
                           allow_download: bool = False) -> ModelVersion:
        """Import a sentence-transformers model (a bundled name such as ``minilm``, a folder,
        or, only with ``allow_download``, a Hugging Face id) as a new version, with its ONNX
        exports."""
        try:
            from embedops.models.transformer import import_transformer
        except ImportError as exc:
            from embedops.errors import DependencyMissing

            raise DependencyMissing("embedops.models.transformer", "import_transformer") from exc
        return import_transformer(self._registry, source, name, allow_download=allow_download)

    def export(self, ref: str, path: str | Path, fmt: str = "word2vec-text") -> ModelVersion:
        """Write a static model's word vectors to ``path`` (atomically) in ``fmt``."""
        from embedops.models.formats import check_format, export_vectors
        from embedops.models.static import StaticVectors

        check_format(fmt)
        mv = self.resolve(ref)
        export_vectors(StaticVectors.read(mv), Path(path), fmt)
        return mv

    def distill(self, parent: str, name: str, config: DistillConfig | None = None,
                corpus: str | Path | None = None) -> ModelVersion:
        """Distill transformer ``parent`` into a static model ``name`` (lineage recorded)."""
        from embedops.train.distill import DistillConfig, distill

        source = Path(corpus) if corpus is not None else None
        return distill(self._registry, parent, name, config or DistillConfig(), source)

    def finetune(
        self, parent: str, name: str, train_file: str | Path, eval_file: str | Path | None = None,
        config: FinetuneConfig | None = None, onnx: bool = True,
    ) -> ModelVersion:
        """Contrastive fine-tuning of transformer ``parent`` on text pairs; a new model."""
        from embedops.train.finetune import FinetuneConfig, finetune

        return finetune(self._registry, parent, name, Path(train_file),
                        Path(eval_file) if eval_file is not None else None,
                        config or FinetuneConfig(), onnx=onnx)

    def evaluate(
        self, ref: str, suites: Sequence[str] = (), pairs: Sequence[str | Path] = (),
        analogies: Sequence[str | Path] = (), method: str = "3cosadd",
        restrict_vocab: int = 300_000,
    ) -> dict[str, Any]:
        """Word similarity and analogy scores (stored in the manifest); ``{suite: result}``."""
        from embedops.evaluate.intrinsic import evaluate_model

        return dict(evaluate_model(self._registry, ref, suites=list(suites),
                                   pairs=[str(p) for p in pairs],
                                   analogies=[str(p) for p in analogies], method=method,
                                   restrict_vocab=restrict_vocab))

    def postprocess_report(self, ref: str, steps: Sequence[str]) -> builtins.list[dict[str, Any]]:
        """What each post-processing step (``pca:128``, ``int8``, ...) does to quality and
        size."""
        try:
            from embedops.evaluate.postprocess import postprocess_report
        except ImportError as exc:
            from embedops.errors import DependencyMissing

            raise DependencyMissing("embedops.evaluate.postprocess", "--postprocess") from exc
        return list(postprocess_report(self._registry, ref, list(steps)))

    def audit_privacy(
        self, ref: str, canaries: Sequence[str] = (), candidates: int = 1000,
        threshold_bits: float = 3.0, members: Sequence[str] = (),
        held_out: Sequence[str] = (), max_membership_auc: float = 0.6,
    ) -> Any:
        """Privacy audit of a static model: exposure of planted canaries (``"context
        words=secret"``), a PII scan of its vocabulary and, given training (``members``) and
        held-out texts, a membership-inference AUC (``evaluate.privacy``); returns the
        PrivacyReport (``check()`` raises when it fails the gate)."""
        from embedops.evaluate.privacy import Canary, audit_static
        from embedops.text.tokenize import TokenizerSpec

        mv = self.resolve(ref)
        table = self.table(mv.ref)
        spec = TokenizerSpec(**(mv.manifest.get("tokenizer") or {}))  # the model's tokenizer
        return audit_static(table, [Canary.parse(c) for c in canaries],
                            candidates=candidates, threshold_bits=threshold_bits, model=mv.ref,
                            members=[spec.tokenize(t) for t in members],
                            held_out=[spec.tokenize(t) for t in held_out],
                            max_membership_auc=max_membership_auc)


def _wordpiece_counts(batcher: Any, texts: builtins.list[str]) -> TokenCounts:
    """Token counts of a transformer's tokenizer (as the encoder tokenizes: see ``Batcher``)."""
    encodings, _, keep = batcher.tokenize(texts)
    tokens = [0] * len(texts)
    for encoding, pos in zip(encodings, keep, strict=True):
        tokens[pos] = len(encoding.ids)
    return TokenCounts(tuple(tokens), None)


def _static_counts(spec: Any, vocab: dict[str, int], texts: builtins.list[str]) -> TokenCounts:
    """Token and out-of-vocabulary counts of a static model's TokenizerSpec."""
    tokens, oov = [], []
    for text in texts:
        words = spec.tokenize(text)
        tokens.append(len(words))
        oov.append(sum(1 for w in words if w not in vocab))
    return TokenCounts(tuple(tokens), tuple(oov))


#: Below these a trained model is worth a warning (measured on gensim's Lee corpus, 60k
#: tokens: vocabulary 1.8k, every nearest neighbour at cosine 0.996).
MIN_VOCAB = 1000
MIN_TOKENS = 100_000
MAX_NEIGHBOUR_COSINE = 0.99
_SAMPLE_WORDS, _SCAN_WORDS = 200, 50_000


def degeneracy_warnings(table: StaticVectors, tokens: int, dim: int,
                        small_corpus_settings: bool = False) -> builtins.list[str]:
    """Why a freshly trained static model is likely useless: a tiny vocabulary, a corpus too
    small for its dimension, or collapsed vectors (the nearest neighbour of most sampled words
    above ``MAX_NEIGHBOUR_COSINE``). Cheap: ``_SAMPLE_WORDS`` words against at most
    ``_SCAN_WORDS`` of the vocabulary. ``small_corpus_settings`` (skip-gram, 20+ epochs already)
    drops the advice to use them. Empty when nothing looks wrong."""
    out = []
    if len(table) < MIN_VOCAB:
        out.append(f"the vocabulary has only {len(table):,} words (fewer than {MIN_VOCAB:,}); "
                   "most queries will be out of vocabulary")
    if tokens < MIN_TOKENS:
        advice = "" if small_corpus_settings else (
            ", or for a small corpus try skip-gram with more epochs (--sg --epochs 20 "
            "--min-count 2 --dim 50)")
        out.append(f"the corpus has {tokens:,} tokens, too few for {dim}-dimensional vectors "
                   f"(word vectors need {MIN_TOKENS:,}+, ideally millions): train on more "
                   f"text{advice}")
    cosine = _median_neighbour_cosine(table)
    if cosine is not None and cosine > MAX_NEIGHBOUR_COSINE:
        out.append(f"the vectors have collapsed: the median word's nearest neighbour has cosine "
                   f"{cosine:.4f} (above {MAX_NEIGHBOUR_COSINE}), so neighbours and search "
                   "rankings are noise; use more text, skip-gram (--sg) or more epochs")
    return out


def _median_neighbour_cosine(table: StaticVectors) -> float | None:
    """Median over sampled words of the cosine to their nearest other word (None: too few)."""
    unit = np.asarray(table.unit_vectors[:_SCAN_WORDS], dtype=np.float32)
    if len(unit) < 3:
        return None
    rng = np.random.default_rng(0)
    picks = rng.choice(len(unit), min(_SAMPLE_WORDS, len(unit)), replace=False)
    scores = unit[picks] @ unit.T
    scores[np.arange(len(picks)), picks] = -np.inf  # a word is not its own neighbour
    return float(np.median(scores.max(axis=1)))


def _stem(path: Path) -> str:
    """A model name from a vector file's name (``glove.6B.100d.txt.gz`` → ``glove.6B.100d``)."""
    name = path.name
    for suffix in (".gz", ".bz2", ".xz", ".txt", ".vec", ".bin"):
        name = name.removesuffix(suffix)
    return name
