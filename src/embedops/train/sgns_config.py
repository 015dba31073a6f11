"""Hyper-parameters and results of the torch word2vec trainer (:mod:`embedops.train.gpu_sgns`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from embedops.errors import InvalidInput
from embedops.models.static import StaticVectors

_UPDATES = ("adagrad", "sgd")
_DEVICES = ("auto", "cpu", "cuda")
_SCHEDULES = ("auto", "linear", "constant")
_ACCUMULATORS = ("row", "element")
_APPLY_MODES = ("auto", "dense", "sparse")
_SHUFFLES = ("auto", "corpus", "chunk")
_VECTORS = ("auto", "sum", "input")


@dataclass(frozen=True)
class SGNSConfig:
    """Hyper-parameters of the torch trainer; round-trips through ``SGNSConfig(**asdict(c))``.

    ``lr`` is the initial learning rate (Adagrad: the base step); ``lr_schedule`` ``linear``
    decays it to ``min_lr_ratio`` of itself over training, ``constant`` keeps it (Adagrad's own
    accumulator then does all the decaying), ``auto`` is ``constant`` for Adagrad (skip-gram lr
    0.3, CBOW 0.2: the best of sweeps on an H100, docs/benchmarks/train_gpu.md) and ``linear``
    for SGD. ``accumulator`` is Adagrad's: one per ``row`` (the
    mean of the squared summed row gradient) or one per ``element``. ``apply_mode`` says how the
    summed per-row gradients are applied: ``dense`` updates the whole table each step (no
    host sync; cheapest while the vocabulary is not much larger than a batch's rows), ``sparse``
    only the batch's rows (no host sync either), ``auto`` picks per step; both give the same
    result. ``batch_size`` counts (center, context) pairs for skip-gram and centers for CBOW.
    ``chunk_tokens`` bounds device memory. ``shuffle`` ``corpus`` reads the corpus each epoch
    in blocks of ``shuffle_block`` ids in a random order (the whole corpus in one piece when it
    fits in a chunk), so each chunk is a random sample of it, and CBOW batches take centers at
    random from the chunk; ``chunk`` reads the corpus in file order, shuffles skip-gram pairs
    within each chunk only and trains CBOW on runs of consecutive centers (the earlier
    behaviour); ``auto`` is ``corpus`` for CBOW and ``chunk`` for skip-gram (on the 13M-word
    corpus, whose last third is a dictionary, file order scores higher on SimLex and lower on
    Google analogies than a shuffled corpus: docs/benchmarks/train_gpu.md).
    ``skip_target_negatives`` gives a negative that is the pair's own target no gradient
    (gensim skips it). ``vectors`` is what is saved: ``sum`` the input plus the output
    (context) vector of each word, ``input`` the input vectors alone (what gensim saves),
    ``auto`` ``sum`` for skip-gram (higher on WS353, SimLex and Google in every run measured)
    and ``input`` for CBOW (not measured).

    Differential privacy (:mod:`embedops.train.dp`): ``dp_epsilon`` (the target; the noise
    multiplier is solved for it) or ``dp_noise_multiplier`` turns on DP-SGD with one corpus
    line (sentence) as the privacy unit; ``dp_clip`` bounds each sentence's gradient (L2 over
    both tables), ``dp_delta`` defaults to 1/N (N: sentences; a larger one is refused) and
    ``dp_batch_sentences`` is the expected number of sentences per step (Poisson sampling).
    ``dp_frozen_output`` keeps the output (context) table at a fixed random start drawn from
    ``seed`` (data-independent) and trains the input table alone: each sentence's clip budget
    and the noise then go to the input rows only, and the input vectors are saved.
    """

    sg: bool = True
    dim: int = 100
    window: int = 5
    min_count: int = 5
    negative: int = 5
    sample: float = 1e-3
    epochs: int = 5
    lr: float | None = None
    min_lr_ratio: float = 1e-4
    batch_size: int = 65536
    update: str = "adagrad"
    device: str = "auto"
    seed: int = 1
    chunk_tokens: int = 8_000_000
    ns_exponent: float = 0.75
    max_vocab: int | None = None
    lr_schedule: str = "auto"
    accumulator: str = "row"
    apply_mode: str = "auto"
    shuffle: str = "auto"
    shuffle_block: int = 65_536
    skip_target_negatives: bool = False
    vectors: str = "auto"
    dp_epsilon: float | None = None
    dp_noise_multiplier: float | None = None
    dp_clip: float = 1.0
    dp_delta: float | None = None
    dp_batch_sentences: int = 512
    dp_frozen_output: bool = False

    def __post_init__(self) -> None:
        if self.update not in _UPDATES:
            raise InvalidInput(f"unknown update rule '{self.update}'", f"use one of {_UPDATES}")
        for name, allowed in (
            ("lr_schedule", _SCHEDULES),
            ("accumulator", _ACCUMULATORS),
            ("apply_mode", _APPLY_MODES),
            ("shuffle", _SHUFFLES),
            ("vectors", _VECTORS),
        ):
            if getattr(self, name) not in allowed:
                raise InvalidInput(
                    f"unknown {name} '{getattr(self, name)}'", f"use one of {allowed}"
                )
        if self.lr is not None and not self.lr > 0:
            raise InvalidInput(f"lr must be > 0, got {self.lr}")
        if self.device not in _DEVICES and not self.device.startswith("cuda:"):
            raise InvalidInput(f"unknown device '{self.device}'", "use auto, cpu, cuda or cuda:N")
        for name in (
            "dim",
            "window",
            "min_count",
            "negative",
            "epochs",
            "batch_size",
            "shuffle_block",
        ):
            if getattr(self, name) < 1:
                raise InvalidInput(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.chunk_tokens < 1000:
            raise InvalidInput(f"chunk_tokens must be >= 1000, got {self.chunk_tokens}")
        self._check_dp()

    def _check_dp(self) -> None:
        if self.dp_epsilon is not None and self.dp_noise_multiplier is not None:
            raise InvalidInput(
                "both a DP epsilon and a DP noise multiplier were given",
                "give one: --dp-epsilon (the noise is solved for it) or --dp-noise",
            )
        for name, value in (("dp_epsilon", self.dp_epsilon),
                            ("dp_noise_multiplier", self.dp_noise_multiplier),
                            ("dp_clip", self.dp_clip)):
            if value is not None and not (math.isfinite(value) and value > 0):
                raise InvalidInput(f"{name} must be a finite number > 0, got {value}",
                                   "e.g. --dp-epsilon 4 (smaller is more private)")
        if self.dp_delta is not None and not 0 < self.dp_delta < 1:
            raise InvalidInput(f"dp_delta must be in (0, 1), got {self.dp_delta}",
                               "leave it out for 1/N (N: sentences of the corpus)")
        if self.dp_batch_sentences < 1:
            raise InvalidInput(f"dp_batch_sentences must be >= 1, got {self.dp_batch_sentences}")
        if self.dp_frozen_output and not self.dp:
            raise InvalidInput("dp_frozen_output is a DP setting",
                               "give a DP epsilon or noise multiplier too")
        if self.dp_frozen_output and self.vectors == "sum":
            raise InvalidInput("with dp_frozen_output the output table is random: it cannot be "
                               "summed into the saved vectors", "use vectors 'input' or 'auto'")

    @property
    def dp(self) -> bool:
        """Whether this run is differentially private (a DP epsilon or noise was given)."""
        return self.dp_epsilon is not None or self.dp_noise_multiplier is not None

    @property
    def schedule(self) -> str:
        """The configured ``lr_schedule``, or the default for the update rule and architecture."""
        if self.lr_schedule != "auto":
            return self.lr_schedule
        return "constant" if self.update == "adagrad" else "linear"

    @property
    def order(self) -> str:
        """The configured ``shuffle``, or the default for the architecture."""
        if self.shuffle != "auto":
            return self.shuffle
        return "chunk" if self.sg else "corpus"

    @property
    def saved_vectors(self) -> str:
        """The configured ``vectors``, or the default for the architecture."""
        if self.vectors != "auto":
            return self.vectors
        return "sum" if self.sg and not self.dp_frozen_output else "input"

    @property
    def base_lr(self) -> float:
        """The configured ``lr``, or the default for the update rule and architecture."""
        if self.lr is not None:
            return self.lr
        if self.update == "adagrad":
            return 0.3 if self.sg else 0.2
        return 0.025 if self.sg else 0.05


@dataclass(frozen=True)
class SGNSResult:
    """The trained table and how training went (recorded in the model manifest)."""

    table: StaticVectors
    device: str
    words: int
    seconds: float
    words_per_second: float
    pairs: int
    input_vectors: np.ndarray | None = None  # the raw tables, rows in the table's order
    context_vectors: np.ndarray | None = None
    privacy: dict[str, Any] | None = None  # DP runs: epsilon spent, delta, noise, clip, ...


def config_summary(config: SGNSConfig, result: SGNSResult) -> dict[str, Any]:
    """Manifest parameters: the config plus device, throughput and schedule facts."""
    return {
        **asdict(config),
        "trainer": "torch-sgns",
        "device": result.device,
        "lr_effective": config.base_lr,
        "lr_schedule_effective": config.schedule,
        "shuffle_effective": config.order,
        "vectors_effective": config.saved_vectors,
        "words_per_second": round(result.words_per_second),
        "train_seconds": round(result.seconds, 3),
        "pairs": result.pairs,
        "log2_batch": int(math.log2(config.batch_size)),
        **({"privacy": result.privacy} if result.privacy is not None else {}),
    }
