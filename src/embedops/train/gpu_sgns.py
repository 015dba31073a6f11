"""Word2vec (skip-gram and CBOW, negative sampling) in PyTorch, for GPUs (and CPU, slowly).

The corpus is mapped to token ids once (a memory-mapped int32 file), then streamed to the device
in chunks each epoch, so device memory stays bounded whatever the corpus size. With
``shuffle="corpus"`` (the CBOW default) each epoch reads the corpus in blocks in a random order
(all of it at once when it fits in one chunk), so every chunk is a random sample of the whole
corpus rather than one stretch of it; skip-gram reads it in file order. On the device a
chunk is subsampled, (center, context) pairs are generated with a dynamic window and shuffled
across the chunk, and trained in large batches. Plain SGD collapses at large batches; the
default update rule is a sparse Adagrad with one accumulator per row, applied to the batch's
summed per-row gradients, which keeps quality at batches of 10^4-10^5 pairs where kernel
launches stop dominating.

With ``dp_epsilon`` or ``dp_noise_multiplier`` set, training is differentially private
(DP-SGD per sentence, :mod:`embedops.train.dp`) and the result carries the epsilon spent.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from embedops.errors import DependencyMissing, InvalidInput
from embedops.models.static import StaticVectors
from embedops.train.dp import DPSGNSTrainer
from embedops.train.sgns_config import SGNSConfig, SGNSResult, config_summary
from embedops.train.sgns_corpus import EncodedCorpus, encode_corpus, epoch_chunks
from embedops.train.sgns_trainer import SGNSTrainer

_Trainer = SGNSTrainer  # the name tests and older callers import

__all__ = [
    "EncodedCorpus",
    "SGNSConfig",
    "SGNSResult",
    "SGNSTrainer",
    "config_summary",
    "encode_corpus",
    "epoch_chunks",
    "resolve_device",
    "train_sgns",
]


def resolve_device(requested: str) -> str:
    """``auto`` → ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda`` without one is refused."""
    torch = _torch()
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidInput(
            f"--device {requested} was asked for but torch sees no CUDA GPU",
            "use --device auto or cpu, or install a CUDA build of torch on a GPU machine",
        )
    return requested


def train_sgns(
    sentences: Callable[[], Iterable[list[str]]],
    config: SGNSConfig | None = None,
    quiet: bool | None = None,
) -> SGNSResult:
    """Train word vectors on ``sentences()`` (a re-iterable source of token lists)."""
    config = config or SGNSConfig()
    torch = _torch()
    device = resolve_device(config.device)
    with tempfile.TemporaryDirectory(prefix="embedops-sgns-") as tmp:
        corpus = encode_corpus(sentences, Path(tmp), config.min_count, config.max_vocab)
        trainer = _trainer(config, corpus, device, torch)
        started = time.perf_counter()
        pairs = trainer.run(quiet)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        inputs = trainer.w_in.float().cpu().numpy()
        context = trainer.w_out.float().cpu().numpy()
    vectors = inputs + context if config.saved_vectors == "sum" else inputs
    table = StaticVectors(corpus.words, vectors, counts=corpus.counts)
    words = corpus.n_tokens * config.epochs
    rate = words / max(seconds, 1e-9)
    privacy = trainer.privacy.to_dict() if isinstance(trainer, DPSGNSTrainer) else None
    return SGNSResult(table, device, words, seconds, rate, pairs, inputs, context, privacy)


def _trainer(config: SGNSConfig, corpus: EncodedCorpus, device: str, torch: Any) -> SGNSTrainer:
    """The DP-SGD trainer (``embedops.train.dp``) when ``config`` asks for DP, else the plain."""
    if config.dp:
        return DPSGNSTrainer(config, corpus, device, torch)
    return SGNSTrainer(config, corpus, device, torch)


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is in the transformers extra
        raise DependencyMissing("torch", "the torch word2vec trainer") from exc
    return torch
