"""Train static word vectors (word2vec CBOW / skip-gram, fastText) with gensim.

One streaming pass reads, redacts, normalizes and tokenizes the corpus in worker processes
into a temporary LineSentence file in the workspace staging folder (counting words on the
way), then gensim trains from that file in ``corpus_file`` mode, where its worker threads
read the file themselves instead of waiting on a Python iterator. The result is published
atomically: a killed run leaves no model version, only a staging folder cleaned up later.
"""

from __future__ import annotations

import collections
import contextlib
import os
import random
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from embedops.errors import InvalidInput
from embedops.models.registry import ModelVersion, Registry, check_name
from embedops.models.registry import _alive as _process_alive
from embedops.models.static import StaticVectors
from embedops.progress import progress_bar
from embedops.text.corpus import Corpus, CorpusStats, write_tokenized
from embedops.text.redact import ALL_KINDS, check_kinds
from embedops.text.tokenize import TokenizerSpec

MODELS = ("word2vec", "fasttext")
VECTORS = ("auto", "sum", "unit-sum", "input")
TOKENS_FILE = "tokens.txt"
SHUFFLE_BLOCK = 256 << 20  # bytes of token file shuffled in memory at once


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run; round-trips through ``TrainConfig(**asdict(c))``.

    The defaults were chosen on the benchmark (docs/benchmarks/train_static.md) to beat
    plain gensim's quality in no more time: CBOW with a wider window (8), stronger
    down-sampling (1e-4 keeps ~58 % of the running words, 1e-3 ~77 %), a higher learning
    rate for CBOW (``alpha`` None: 0.075 for CBOW, above word2vec.c's 0.05, which scored
    lower on WS353 and SimLex; 0.025 for skip-gram), 5 epochs
    over the paragraphs in a seeded random order (``shuffle``: a corpus made of whole books
    and manuals in sequence otherwise trains its last sources at the lowest learning rate,
    and gensim's corpus_file threads each read one contiguous share of the file), and each
    word saved as its input + output vector (``vectors``).
    ``redact`` lists the PII kinds replaced before training (empty: no redaction).
    ``bucket`` is the number of fastText n-gram buckets (its memory is bucket x dim floats).
    ``device`` None trains with gensim on the CPU; ``auto``, ``cpu``, ``cuda`` or ``cuda:N``
    train word2vec with the torch trainer (``embedops.train.gpu_sgns``), in batches of
    ``batch_size`` pairs with the ``update`` rule (``adagrad`` or ``sgd``).
    ``dp_epsilon`` or ``dp_noise`` trains differentially private word2vec with the torch
    trainer (``device`` None means ``auto`` then); see ``embedops.train.dp``. DP settings
    that need one of them: ``dp_lot`` (expected sentences per DP step, Poisson sampling;
    None: the trainer's 512), ``dp_max_vocab`` (keep only the most frequent words) and
    ``dp_frozen_output`` (a fixed random output table, the input table trained and saved).
    ``vectors`` is what each word's saved vector is: ``input`` (what gensim keeps), ``sum``
    (input + output vector, Levy, Goldberg & Dagan 2015: better word similarity, for
    fastText too, whose out-of-vocabulary words keep n-gram input vectors alone),
    ``unit-sum`` (the two scaled to unit length first, gensim trainer only: for fastText
    +0.05 WS353 / +0.035 SimLex over ``sum`` for -0.04 Google on the benchmark corpus, its
    out-of-vocabulary words mapped into the rows' space by ``StaticVectors.with_oov_fit``; for
    word2vec the same as ``sum``), ``auto`` (``unit-sum`` for fastText, ``sum`` for word2vec).
    """

    model: str = "word2vec"
    sg: bool = False
    dim: int = 100
    window: int = 8
    min_count: int = 5
    negative: int = 5
    sample: float = 1e-4
    epochs: int = 5
    alpha: float | None = None
    min_alpha: float = 0.0001
    workers: int = 2
    seed: int = 1
    min_n: int = 3
    max_n: int = 6
    bucket: int = 200_000
    redact: tuple[str, ...] = ALL_KINDS
    phrases: bool = False
    phrase_min_count: int = 5
    phrase_threshold: float = 10.0
    text_field: str = "text"
    replace_bad_bytes: bool = False
    device: str | None = None
    batch_size: int = 65536
    update: str = "adagrad"
    dp_epsilon: float | None = None
    dp_noise: float | None = None
    dp_clip: float = 1.0
    dp_delta: float | None = None
    dp_lot: int | None = None
    dp_max_vocab: int | None = None
    dp_frozen_output: bool = False
    vectors: str = "auto"
    shuffle: bool = True

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise InvalidInput(f"unknown model '{self.model}'", f"use one of {', '.join(MODELS)}")
        object.__setattr__(self, "redact", check_kinds(self.redact))
        if self.alpha is None:
            object.__setattr__(self, "alpha", 0.025 if self.sg else 0.075)
        if self.vectors not in VECTORS:
            raise InvalidInput(f"unknown vectors '{self.vectors}'",
                               f"use one of {', '.join(VECTORS)}")
        for name in ("dim", "window", "min_count", "epochs", "workers"):
            if getattr(self, name) < 1:
                raise InvalidInput(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.negative < 1:
            raise InvalidInput(f"negative must be >= 1, got {self.negative}")
        if not 0 <= self.sample < 1:
            raise InvalidInput(f"sample must be in [0, 1), got {self.sample}")
        if not 0 < self.min_alpha <= cast(float, self.alpha):
            raise InvalidInput(f"need 0 < min_alpha <= alpha, got {self.min_alpha}, {self.alpha}")
        if self.model == "fasttext" and not (1 <= self.min_n <= self.max_n and self.bucket > 0):
            raise InvalidInput(
                f"fastText needs 1 <= min_n <= max_n and bucket > 0, got "
                f"min_n={self.min_n} max_n={self.max_n} bucket={self.bucket}"
            )
        self._check_dp_settings()
        if (self.dp_epsilon is not None or self.dp_noise is not None) and self.device is None:
            if self.model != "word2vec":
                raise InvalidInput(f"differentially private training is for word2vec, not "
                                   f"{self.model}", "drop --dp-epsilon or train --model word2vec")
            object.__setattr__(self, "device", "auto")  # DP runs on the torch trainer
        if self.vectors == "unit-sum" and self.device is not None:
            raise InvalidInput("vectors 'unit-sum' is for the gensim trainer, not --device",
                               "use vectors 'sum' with the torch trainer")
        if self.device is not None:
            self.torch_config()  # validates device, batch size and update rule
            if self.model != "word2vec":
                raise InvalidInput(
                    f"--device {self.device} trains word2vec only, not {self.model}",
                    "drop --device to train fastText with gensim on the CPU",
                )

    def _check_dp_settings(self) -> None:
        """``dp_lot`` and ``dp_max_vocab`` are >= 1; they and ``dp_frozen_output`` need DP."""
        for name in ("dp_lot", "dp_max_vocab"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InvalidInput(f"{name} must be >= 1, got {value}")
        given = [name for name in ("dp_lot", "dp_max_vocab", "dp_frozen_output")
                 if getattr(self, name) not in (None, False)]
        if given and self.dp_epsilon is None and self.dp_noise is None:
            raise InvalidInput(f"{', '.join(given)} only apply to differentially private training",
                               "give --dp-epsilon (or --dp-noise) too, or drop them")

    @property
    def saved_vectors(self) -> str:
        """What is saved per word: ``sum`` (input + output vector), ``unit-sum`` (the two at
        unit length) or ``input`` alone; ``auto`` is ``unit-sum`` for fastText (gensim
        trainer), ``sum`` otherwise."""
        if self.vectors != "auto":
            return self.vectors
        return "unit-sum" if self.model == "fasttext" and self.device is None else "sum"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters for the manifest."""
        d = asdict(self)
        d["redact"] = list(self.redact)
        return d

    def torch_config(self) -> Any:
        """The same hyper-parameters for the torch trainer (``SGNSConfig``)."""
        from embedops.train.gpu_sgns import SGNSConfig

        return SGNSConfig(
            sg=self.sg, dim=self.dim, window=self.window, min_count=self.min_count,
            negative=self.negative, sample=self.sample, epochs=self.epochs,
            batch_size=self.batch_size, update=self.update, device=self.device or "auto",
            seed=self.seed, dp_epsilon=self.dp_epsilon, dp_noise_multiplier=self.dp_noise,
            dp_clip=self.dp_clip, dp_delta=self.dp_delta, vectors=self.vectors,
            dp_frozen_output=self.dp_frozen_output, max_vocab=self.dp_max_vocab,
            dp_batch_sentences=self.dp_lot or SGNSConfig.dp_batch_sentences,
        )

    def tokenizer_spec(self, phrases_sha256: str | None = None) -> TokenizerSpec:
        """The TokenizerSpec that training uses and that queries must use too."""
        subwords = (self.min_n, self.max_n) if self.model == "fasttext" else (0, 0)
        return TokenizerSpec(
            redact=self.redact,
            subword_min=subwords[0],
            subword_max=subwords[1],
            phrases_sha256=phrases_sha256,
        )


@dataclass(frozen=True)
class TrainResult:
    """The published version and what training measured."""

    version: ModelVersion
    corpus: CorpusStats
    train_seconds: float
    words_per_second: float
    summary: dict[str, Any] = field(default_factory=dict)


def train_static(
    corpus: str | Path,
    name: str,
    config: TrainConfig | None = None,
    registry: Registry | None = None,
) -> TrainResult:
    """Train word vectors on the corpus file or folder and publish them as a new version of
    ``name``; return the version and its training figures."""
    config = config or TrainConfig()
    check_name(name)
    registry = registry or Registry()
    source = Corpus(
        corpus,
        text_field=config.text_field,
        errors="replace" if config.replace_bad_bytes else "strict",
    )
    started = time.perf_counter()
    with _scratch(registry, name) as scratch:
        tokens_path = scratch / TOKENS_FILE
        stats, counts, phrase_table = _prepare(source, config, tokens_path)
        train_started = time.perf_counter()
        if config.device is None:
            kv, trained_words = _fit(config, tokens_path, counts)
            table = StaticVectors.from_gensim(kv)
            if config.saved_vectors == "unit-sum" and table.has_subwords:
                table = table.with_oov_fit()  # out-of-vocabulary words in the rows' space
            trainer: dict[str, Any] = {"trainer": "gensim", "device": "cpu",
                       "vectors_effective": config.saved_vectors}
            if table.oov_map is not None:
                trainer["oov"] = {"map": "least squares from n-gram means to rows",
                                  "norm": round(table.oov_norm, 6)}
        else:
            table, trained_words, trainer = _fit_torch(config, tokens_path)
        train_seconds = time.perf_counter() - train_started
    words_per_second = round(trained_words / max(train_seconds, 1e-9))
    summary: dict[str, Any] = {
        "corpus": stats.to_dict(),
        "train_seconds": round(train_seconds, 3),
        "total_seconds": round(time.perf_counter() - started, 3),
        "words_per_second": words_per_second,
        **trainer,
    }
    spec = config.tokenizer_spec(phrase_table.sha256 if phrase_table else None)
    version = _publish(registry, name, table, config, spec, phrase_table, summary)
    return TrainResult(version, stats, train_seconds, words_per_second, summary)


def _prepare(
    source: Corpus, config: TrainConfig, tokens_path: Path
) -> tuple[CorpusStats, collections.Counter[str] | None, Any]:
    """Tokenize the corpus into ``tokens_path``, counting words on the way (which spares
    gensim a second pass); with phrases, learn them and merge them into the file (the counts
    are then left to gensim). Return (stats, word counts or None, phrase table or None)."""
    counts: collections.Counter[str] | None = None if config.phrases else collections.Counter()
    stats = write_tokenized(
        source, config.tokenizer_spec(), tokens_path, workers=config.workers, word_counts=counts
    )
    phrase_table = None
    if config.phrases:
        from embedops.text.phrases import learn_phrases, rewrite_with_phrases

        phrase_table = learn_phrases(tokens_path, config.phrase_min_count, config.phrase_threshold)
        rewrite_with_phrases(tokens_path, phrase_table)
    if config.shuffle:
        shuffle_lines(tokens_path, config.seed)
    return stats, counts, phrase_table


def shuffle_lines(path: Path, seed: int) -> None:
    """Put the lines of ``path`` in a seeded random order, in place. A file larger than
    ``SHUFFLE_BLOCK`` is first dealt line by line into random bucket files, each shuffled in
    memory on its own, so memory stays near one block whatever the corpus size."""
    rng = random.Random(seed)
    buckets = max(1, -(-path.stat().st_size // SHUFFLE_BLOCK))
    parts = [path] if buckets == 1 else [path.with_name(f"{path.name}.{i}") for i in
                                          range(buckets)]
    if buckets > 1:
        handles = [open(p, "wb") for p in parts]  # noqa: SIM115 (closed below)
        try:
            with open(path, "rb") as fh:
                for line in fh:
                    handles[rng.randrange(buckets)].write(line)
        finally:
            for handle in handles:
                handle.close()
    shuffled = path.with_name(path.name + ".shuffled")
    with open(shuffled, "wb") as out:
        for part in parts:
            lines = part.read_bytes().splitlines(keepends=True)
            if lines and not lines[-1].endswith(b"\n"):
                lines[-1] += b"\n"
            rng.shuffle(lines)
            out.writelines(lines)
            if part != path:
                part.unlink()
    os.replace(shuffled, path)


@contextlib.contextmanager
def _scratch(registry: Registry, name: str) -> Iterator[Path]:
    """A staging folder for the token file, removed afterwards (a killed run's folder is
    removed by the next run, once its process is gone)."""
    staging = registry.workspace.staging_dir
    for old in staging.glob("train.*"):
        parts = old.name.split(".")
        if len(parts) > 3 and parts[-2].isdigit() and not _process_alive(int(parts[-2])):
            shutil.rmtree(old, ignore_errors=True)
    path = staging / f"train.{name}.{os.getpid()}.{time.time_ns()}"
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _fit(
    config: TrainConfig, tokens_path: Path, counts: collections.Counter[str] | None
) -> tuple[Any, int]:
    """Train with gensim in corpus_file mode on the vocabulary ``counts`` (scanned from the
    file when None); return (KeyedVectors, effective words trained)."""
    from gensim.models import FastText, Word2Vec

    common: dict[str, Any] = dict(
        vector_size=config.dim, window=config.window, min_count=config.min_count,
        negative=config.negative, sample=config.sample, epochs=config.epochs, sg=int(config.sg),
        alpha=config.alpha, min_alpha=config.min_alpha, workers=config.workers,
        seed=config.seed, hs=0,
    )
    if config.model == "fasttext":
        model = FastText(min_n=config.min_n, max_n=config.max_n, bucket=config.bucket, **common)
    else:
        model = Word2Vec(**common)
    if counts is None:
        model.build_vocab(corpus_file=str(tokens_path))
    else:
        model.build_vocab_from_freq(counts)
        model.corpus_total_words = sum(counts.values())
    total_words = model.corpus_total_words
    with progress_bar("training", total=config.epochs * total_words, unit="words") as task:
        trained, _ = model.train(
            corpus_file=str(tokens_path),
            total_words=model.corpus_total_words,
            epochs=config.epochs,
            callbacks=_report_progress(model, task, total_words),
        )
    if config.saved_vectors == "sum":
        # Input + output vectors (Levy, Goldberg & Dagan 2015): free, and better on word
        # similarity; a fastText word's n-grams stay in the input space alone.
        model.wv.vectors = model.wv.vectors + model.syn1neg
    elif config.saved_vectors == "unit-sum":
        model.wv.vectors = _unit_rows(model.wv.vectors) + _unit_rows(model.syn1neg)
    return model.wv, int(trained)


def _unit_rows(matrix: Any) -> Any:
    """``matrix`` with each row scaled to unit length (all-zero rows stay zero)."""
    import numpy as np

    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, np.finfo(np.float32).tiny)


def _fit_torch(config: TrainConfig, tokens_path: Path) -> tuple[StaticVectors, int, dict[str, Any]]:
    """Train with the torch trainer on the token file; return (table, words, trainer facts)."""
    from embedops.train.gpu_sgns import train_sgns

    def sentences() -> Iterator[list[str]]:
        with open(tokens_path, encoding="utf-8") as fh:
            for line in fh:
                yield line.split()

    result = train_sgns(sentences, config.torch_config())
    trainer = {"trainer": "torch-sgns", "device": result.device, "batch_size": config.batch_size,
               "update": config.update, "pairs": result.pairs}
    if result.privacy is not None:
        trainer["privacy"] = result.privacy
    return result.table, result.words, trainer


def _report_progress(model: Any, task: Any, total_words: int) -> list[Any]:
    """Advance ``task`` as gensim reports progress (about once a second, and at each epoch's
    end); return the gensim callbacks to pass to ``train``."""
    original = model._log_progress

    def log_progress(*args: Any, **kwargs: Any) -> Any:
        names = ("job_queue", "progress_queue", "cur_epoch", "example_count", "total_examples",
                 "raw_word_count")
        values = dict(zip(names, args, strict=False)) | kwargs
        done = values["cur_epoch"] * total_words + values["raw_word_count"]
        task.update(completed=done)
        return original(*args, **kwargs)

    model._log_progress = log_progress
    from gensim.models.callbacks import CallbackAny2Vec

    class _EpochEnd(CallbackAny2Vec):  # type: ignore[misc]
        def __init__(self) -> None:
            self.epochs = 0

        def on_epoch_end(self, _model: Any) -> None:
            self.epochs += 1
            task.update(completed=self.epochs * total_words)

    return [_EpochEnd()]


def _publish(
    registry: Registry,
    name: str,
    table: StaticVectors,
    config: TrainConfig,
    spec: TokenizerSpec,
    phrase_table: Any,
    summary: dict[str, Any],
) -> ModelVersion:
    """Publish the table (and phrase table) atomically as the next version of ``name``."""
    with registry.draft(
        name,
        config.model,
        dim=table.dim,
        vocab_size=len(table),
        subwords=table.has_subwords,
        params=config.to_dict(),
        tokenizer=spec.to_dict(),
        tokenizer_fingerprint=spec.fingerprint(),
        corpus_sha256=summary["corpus"]["sha256"],
        corpus_tokens=summary["corpus"]["tokens"],
        training=summary,
    ) as draft:
        table.write(draft.path)
        if phrase_table is not None:
            phrase_table.write(draft.path)
    assert draft.published is not None
    return draft.published
