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
"""

from __future__ import annotations

import math
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedops.errors import CorpusError, DependencyMissing, InvalidInput
from embedops.models.static import StaticVectors
from embedops.progress import progress_bar

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
    corpus, whose last third is a dictionary, file order scores SimLex 0.03-0.04 higher and
    Google analogies 0.015 lower than a shuffled corpus). ``skip_target_negatives`` gives a
    negative that is the pair's own target no gradient (gensim skips it). ``vectors`` is what
    is saved: ``sum`` the input plus the output (context) vector of each word, ``input`` the
    input vectors alone (what gensim saves), ``auto`` ``sum`` for skip-gram (higher on WS353,
    SimLex and Google in every run measured) and ``input`` for CBOW (not measured).
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
        return "sum" if self.sg else "input"

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


# ---------------------------------------------------------------------------------------------
# Corpus → vocabulary → memory-mapped token ids
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EncodedCorpus:
    """Token ids of a corpus (int32 memmap, sentence ends marked by ``-1``) and its vocab."""

    ids: np.ndarray
    words: list[str]
    counts: np.ndarray
    n_tokens: int


def encode_corpus(
    sentences: Callable[[], Iterable[list[str]]],
    workdir: Path,
    min_count: int,
    max_vocab: int | None = None,
) -> EncodedCorpus:
    """Two passes over ``sentences()``: count words, then write in-vocabulary ids to a memmap."""
    counter: Counter[str] = Counter()
    for sentence in sentences():
        counter.update(sentence)
    kept = [(w, c) for w, c in counter.most_common(max_vocab) if c >= min_count]
    if not kept:
        raise CorpusError(
            f"no word occurs at least min_count={min_count} times",
            "use a larger corpus or a smaller --min-count",
        )
    words = [w for w, _ in kept]
    counts = np.array([c for _, c in kept], dtype=np.int64)
    index = {w: i for i, w in enumerate(words)}
    path = workdir / "ids.int32"
    n_tokens = 0
    with open(path, "wb") as fh:
        for sentence in sentences():
            row = [index[w] for w in sentence if w in index]
            if row:
                row.append(-1)
                fh.write(np.asarray(row, dtype=np.int32).tobytes())
                n_tokens += len(row) - 1
    ids = np.memmap(path, dtype=np.int32, mode="r")
    return EncodedCorpus(ids=ids, words=words, counts=counts, n_tokens=n_tokens)


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------
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
        trainer = _Trainer(config, corpus, device, torch)
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
    return SGNSResult(table, device, words, seconds, rate, pairs, inputs, context)


class _Trainer:
    """State of one training run: embeddings, Adagrad accumulators, sampling tables."""

    def __init__(self, config: SGNSConfig, corpus: EncodedCorpus, device: str, torch: Any):
        self.c, self.corpus, self.device, self.torch = config, corpus, device, torch
        self.gen = torch.Generator(device=device).manual_seed(config.seed)
        vocab, dim = len(corpus.words), config.dim
        init = (torch.rand(vocab, dim, generator=self.gen, device=device) - 0.5) / dim
        self.w_in = init.contiguous()
        self.w_out = torch.zeros(vocab, dim, device=device)
        acc_shape = (vocab, dim) if config.accumulator == "element" else (vocab,)
        self.acc_in = torch.zeros(acc_shape, device=device)
        self.acc_out = torch.zeros(acc_shape, device=device)
        self.grad_buf = torch.zeros(vocab, dim, device=device)
        self.row_count = torch.zeros(vocab, device=device)  # sparse apply: hits per row
        counts = torch.as_tensor(corpus.counts, dtype=torch.float64, device=device)
        self.noise = (counts**config.ns_exponent / (counts**config.ns_exponent).sum()).float()
        self.noise_cdf = torch.cumsum(self.noise, 0)
        self.keep_prob = _keep_probability(counts, config.sample).float()
        self.total_words = max(corpus.n_tokens * config.epochs, 1)
        self.words_done = 0
        self.chunk_words = 0
        self.chunk_fraction = 0.0

    # -- schedule ------------------------------------------------------------------------------
    def lr(self) -> float:
        """Linear decay over all words of all epochs, floored at ``min_lr_ratio`` (or constant)."""
        if self.c.schedule == "constant":
            return self.c.base_lr
        done = self.words_done + self.chunk_fraction * self.chunk_words
        progress = min(done / self.total_words, 1.0)
        base = self.c.base_lr
        return max(base * (1.0 - progress), base * self.c.min_lr_ratio)

    def run(self, quiet: bool | None) -> int:
        pairs = 0
        rng = np.random.default_rng(self.c.seed) if self.c.order == "corpus" else None
        with progress_bar("training (torch)", self.total_words, "words", quiet) as bar:
            for _ in range(self.c.epochs):
                chunks = epoch_chunks(
                    self.corpus.ids, self.c.chunk_tokens, self.c.shuffle_block, rng
                )
                for host in chunks:
                    self.chunk_words = int((host >= 0).sum())
                    self.chunk_fraction = 0.0
                    pairs += self._train_chunk(self.torch.as_tensor(host, device=self.device))
                    self.words_done += self.chunk_words
                    bar.advance(self.chunk_words)
        return pairs

    # -- one chunk -----------------------------------------------------------------------------
    def _train_chunk(self, ids: Any) -> int:
        torch = self.torch
        sentence = torch.cumsum((ids < 0).to(torch.int32), 0)
        keep = ids >= 0
        draw = torch.rand(ids.shape, generator=self.gen, device=self.device)
        keep &= draw < self.keep_prob[ids.clamp(min=0)]
        words, sentence = ids[keep].long(), sentence[keep]
        if words.numel() < 2:
            return 0
        centers, contexts = self._pairs(words, sentence)
        if self.c.sg:
            return self._train_skipgram(words, centers, contexts)
        return self._train_cbow(words, centers, contexts)

    def _pairs(self, words: Any, sentence: Any) -> tuple[Any, Any]:
        """Positions (center, context) within a dynamic window, never across sentences."""
        torch, n = self.torch, words.numel()
        reach = torch.randint(1, self.c.window + 1, (n,), generator=self.gen, device=self.device)
        centers, contexts = [], []
        for offset in range(1, min(self.c.window, n - 1) + 1):
            left = torch.arange(n - offset, device=self.device)
            right = left + offset
            same = sentence[left] == sentence[right]
            fwd = same & (reach[left] >= offset)
            bwd = same & (reach[right] >= offset)
            centers += [left[fwd], right[bwd]]
            contexts += [right[fwd], left[bwd]]
        return torch.cat(centers), torch.cat(contexts)

    def _negatives(self, n: int) -> Any:
        """``n`` rows of ``negative`` word ids drawn from the unigram^0.75 distribution."""
        draw = self.torch.rand((n, self.c.negative), generator=self.gen, device=self.device)
        idx = self.torch.searchsorted(self.noise_cdf, draw)
        return idx.clamp_(max=self.noise_cdf.numel() - 1)

    def _train_skipgram(self, words: Any, centers: Any, contexts: Any) -> int:
        """Shuffled (center, context) pairs in batches: w_in[center] predicts the context."""
        torch = self.torch
        order = torch.randperm(centers.numel(), generator=self.gen, device=self.device)
        center_words, context_words = words[centers[order]], words[contexts[order]]
        total, size = order.numel(), self.c.batch_size
        for start in range(0, total, size):
            self.chunk_fraction = start / total
            c = center_words[start : start + size]
            grad_h = self._output_step(self.w_in[c], context_words[start : start + size])
            self._apply(self.w_in, self.acc_in, c, grad_h)
        return total

    def _train_cbow(self, words: Any, centers: Any, contexts: Any) -> int:
        """Batches of centers (drawn at random from the chunk, or runs of consecutive ones for
        ``shuffle="chunk"``): the mean of the current context vectors predicts the center
        word; the hidden gradient goes back to each context word.
        """
        torch = self.torch
        n, size = words.numel(), self.c.batch_size
        if self.c.order == "corpus":  # batches of centers drawn at random from the chunk
            position = torch.randperm(n, generator=self.gen, device=self.device)
            rank = torch.empty_like(position)
            rank[position] = torch.arange(n, device=self.device)
            centers = rank[centers]
        else:  # runs of consecutive centers, the runs in a random order
            position = torch.arange(n, device=self.device)
        centers, by_center = torch.sort(centers, stable=True)
        context_words = words[contexts[by_center]]
        targets = words[position]
        starts = torch.arange(0, n, size, device=self.device)
        bounds = torch.searchsorted(centers, torch.cat([starts, starts.new_tensor([n])]))
        blocks = torch.randperm(starts.numel(), generator=self.gen, device=self.device).tolist()
        bounds = bounds.tolist()  # one host sync per chunk, not two per batch
        for done, block in enumerate(blocks):
            self.chunk_fraction = done / len(blocks)
            lo, hi = bounds[block], bounds[block + 1]
            first = block * size
            count = min(size, n - first)
            slot = centers[lo:hi] - first
            rows = context_words[lo:hi]
            h = torch.zeros(count, self.c.dim, device=self.device)
            h.index_add_(0, slot, self.w_in[rows])
            ctx_n = torch.bincount(slot, minlength=count).clamp_(min=1).unsqueeze(1).float()
            grad_h = self._output_step(h / ctx_n, targets[first : first + count])
            self._apply(self.w_in, self.acc_in, rows, (grad_h / ctx_n)[slot])
        return int(centers.numel())

    def _output_step(self, h: Any, targets: Any) -> Any:
        """Negative-sampling loss gradient for hidden vectors ``h`` (b, d); updates ``w_out``."""
        torch = self.torch
        negs = self._negatives(targets.numel())
        out_ids = torch.cat([targets.unsqueeze(1), negs], dim=1)  # (b, 1+K)
        u = self.w_out[out_ids]  # (b, 1+K, d)
        logits = torch.bmm(u, h.unsqueeze(2)).squeeze(2)
        label = torch.zeros_like(logits)
        label[:, 0] = 1.0
        g = torch.sigmoid(logits) - label  # d loss / d logit
        if self.c.skip_target_negatives:  # a negative that is the target itself: no gradient
            g[:, 1:].masked_fill_(negs == targets.unsqueeze(1), 0.0)
        grad_h = torch.bmm(g.unsqueeze(1), u).squeeze(1)
        grad_u = g.unsqueeze(2) * h.unsqueeze(1)
        self._apply(self.w_out, self.acc_out, out_ids.reshape(-1), grad_u.reshape(-1, self.c.dim))
        return grad_h

    def _apply(self, weights: Any, acc: Any, rows: Any, grads: Any) -> None:
        """An SGD or Adagrad step on the batch's gradients summed per row (rows may repeat).

        Neither path waits on the device (no ``nonzero``/``unique``): ``dense`` sums into a
        persistent (vocab, dim) buffer and steps the whole table (untouched rows have a zero
        gradient, so they do not move and their accumulator does not grow); ``sparse`` works
        on the batch's rows only, each repeat of a row carrying 1/count of the row's step.
        """
        lr = self.lr()
        if self.c.update == "sgd":
            weights.index_add_(0, rows, grads, alpha=-lr)
            return
        mode = self.c.apply_mode
        if mode == "auto":
            mode = "dense" if weights.shape[0] <= 2 * rows.numel() else "sparse"
        if mode == "dense":
            buf = self.grad_buf
            buf.index_add_(0, rows, grads)
            if acc.dim() == 1:
                acc += buf.square().mean(dim=1)
                buf.div_(acc.sqrt().add_(1e-6).unsqueeze(1))
            else:
                acc += buf.square()
                buf.div_(acc.sqrt().add_(1e-6))
            weights.add_(buf, alpha=-lr)
            buf.zero_()
            return
        self.grad_buf.index_add_(0, rows, grads)
        self.row_count.index_add_(0, rows, grads.new_ones(rows.shape))
        summed = self.grad_buf[rows]
        share = self.row_count[rows].reciprocal_()  # each repeat of a row adds its share
        if acc.dim() == 1:
            acc.index_add_(0, rows, summed.square().mean(dim=1) * share)
            denom = acc[rows].sqrt_().add_(1e-6).unsqueeze(1)
        else:
            acc.index_add_(0, rows, summed.square() * share.unsqueeze(1))
            denom = acc[rows].sqrt_().add_(1e-6)
        step = summed * share.unsqueeze(1) / denom
        weights.index_add_(0, rows, step, alpha=-lr)
        self.grad_buf[rows] = 0.0
        self.row_count[rows] = 0.0


def epoch_chunks(
    ids: np.ndarray, chunk_tokens: int, block: int, rng: np.random.Generator | None
) -> Iterator[np.ndarray]:
    """One epoch of ``ids`` (``-1`` ends a sentence) in chunks of about ``chunk_tokens`` ids.

    ``rng`` None: the file in order. Otherwise the whole file in one chunk when it fits, else
    blocks of ``block`` ids in a random order (each block read forward from the memmap), a
    ``-1`` after each so that no window spans two blocks: every chunk is a random sample of the
    corpus, and every id is read once per epoch.
    """
    n = len(ids)
    if rng is None:
        for start in range(0, n, chunk_tokens):
            yield np.array(ids[start : start + chunk_tokens])
        return
    if n <= chunk_tokens:
        yield np.array(ids)
        return
    block = min(block, chunk_tokens)
    order = rng.permutation(-(-n // block))
    per_chunk = max(1, chunk_tokens // block)
    end = np.array([-1], dtype=ids.dtype)
    for first in range(0, order.size, per_chunk):
        parts = []
        for b in np.sort(order[first : first + per_chunk]):
            parts += [ids[b * block : (b + 1) * block], end]
        yield np.concatenate(parts)


def _keep_probability(counts: Any, sample: float) -> Any:
    """word2vec's subsampling: keep ``(sqrt(f/t) + 1) * t/f`` of a word of frequency f."""
    if sample <= 0:
        return counts.new_ones(counts.shape)
    threshold = sample * counts.sum()
    return ((counts / threshold).sqrt() + 1) * threshold / counts


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is in the transformers extra
        raise DependencyMissing("torch", "the torch word2vec trainer") from exc
    return torch


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
    }
