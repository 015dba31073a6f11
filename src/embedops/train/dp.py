"""Differentially private training of the torch word2vec trainer: DP-SGD, one sentence a unit.

Privacy unit: one *sentence* of the corpus, i.e. one line of the training text (a paragraph or
document as the corpus reader yields it), not one (center, context) pair. A secret lives in a
sentence, and a sentence yields many pairs (each kept word with every word of its window, each
with its negatives); a guarantee per pair would bound what one pair reveals while a sentence
could reveal up to its number of pairs times more. Clipping per sentence bounds the whole
sentence's effect on every step, so the guarantee is about sentences.

One step (DP-SGD, Abadi et al. 2016):

1. Poisson sampling: each sentence joins the step's lot on its own with probability
   q = ``dp_batch_sentences`` / N (what the accountant assumes); an epoch is about 1/q steps.
2. The lot's pairs (dynamic window, subsampling of frequent words, negatives) and their
   gradients are made as in the non-private trainer, and not applied.
3. Per-sentence clipping: a sentence's gradient over both tables (input and output vectors, its
   pairs summed per row) is scaled to an L2 norm of at most ``dp_clip``. The gradient is sparse,
   so its norm is taken over the rows it touches only (``example_norms``).
4. Gaussian noise of standard deviation ``noise_multiplier * dp_clip`` is added to *every*
   row of both tables (to untouched rows too: otherwise which rows moved would tell which words
   were in the lot), the sum is divided by the expected lot size, and the update rule (Adagrad
   or SGD) applies it, which is post-processing and spends no privacy.

The accountant is opacus' RDP accountant: epsilon spent at ``delta`` for (noise, q, steps), and
for a target epsilon the noise multiplier that reaches it. The sampling and the noise come from
fresh OS entropy, never from ``seed`` (a known seed would let anyone replay the noise), so DP
runs are not bit-reproducible.

Not covered by the guarantee: the vocabulary (words seen ``min_count`` times) and the word
counts (subsampling and the negative distribution) are taken from the corpus as usual, so the
guarantee is for the trained vectors given the vocabulary; a string repeated in k sentences is
protected only at group level (about k times epsilon).
"""

from __future__ import annotations

import math
import secrets
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from embedops.errors import DependencyMissing, InvalidInput
from embedops.progress import progress_bar
from embedops.train.sgns_config import SGNSConfig
from embedops.train.sgns_corpus import EncodedCorpus
from embedops.train.sgns_trainer import SGNSTrainer

SCOPE = "trained vectors given the vocabulary (vocabulary and word counts are not private)"


@dataclass(frozen=True)
class PrivacySpent:
    """What a DP run guarantees, for the manifest (``to_dict``)."""

    epsilon: float
    delta: float
    noise_multiplier: float
    clip: float
    sample_rate: float
    steps: int
    sentences: int
    unit: str = "sentence"
    accountant: str = "rdp (opacus)"
    scope: str = SCOPE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rdp_accountant() -> Any:
    try:
        from opacus.accountants import RDPAccountant
    except ImportError as exc:
        error = DependencyMissing("opacus", "differentially private training")
        error.hint = "pip install 'embedops[privacy]'"
        raise error from exc
    return RDPAccountant()


def epsilon_spent(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    """Epsilon at ``delta`` after ``steps`` Poisson-sampled Gaussian steps (opacus RDP)."""
    accountant = _rdp_accountant()
    accountant.history = [(noise_multiplier, sample_rate, steps)]
    return float(accountant.get_epsilon(delta=delta, alphas=_alphas(accountant)))


def _alphas(accountant: Any) -> list[float]:
    """opacus' RDP orders and a few larger ones (strong noise has its optimum beyond 63)."""
    return [*accountant.DEFAULT_ALPHAS, 80, 128, 256, 512]


def noise_for_epsilon(epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    """The noise multiplier whose ``steps`` steps at ``sample_rate`` spend ``epsilon`` at
    ``delta`` (opacus' solver over its RDP accountant)."""
    alphas = _alphas(_rdp_accountant())  # a clear error when opacus is missing
    from opacus.accountants.utils import get_noise_multiplier

    try:
        sigma = get_noise_multiplier(target_epsilon=epsilon, target_delta=delta,
                                     sample_rate=sample_rate, steps=steps, accountant="rdp",
                                     alphas=alphas)
    except ValueError as exc:
        raise InvalidInput(
            f"no noise level reaches epsilon {epsilon} at delta {delta:.3g} in {steps} steps",
            "ask for a larger --dp-epsilon, or fewer epochs or sentences per step",
        ) from exc
    return float(sigma)


def plan_privacy(config: SGNSConfig, sentences: int) -> PrivacySpent:
    """Noise, sampling rate, steps and the epsilon spent of a DP run over ``sentences``."""
    if sentences < 1:
        raise InvalidInput("the corpus has no sentence to train on",
                           "use a larger corpus or a smaller --min-count")
    delta = config.dp_delta if config.dp_delta is not None else 1.0 / sentences
    if delta > 1.0 / sentences:
        raise InvalidInput(
            f"dp_delta {delta:.3g} is above 1/N = {1.0 / sentences:.3g} (N = {sentences} "
            "sentences): such a delta allows publishing a whole sentence",
            "leave --dp-delta out (1/N) or give a smaller one",
        )
    rate = min(1.0, config.dp_batch_sentences / sentences)
    steps = config.epochs * math.ceil(1.0 / rate)
    if config.dp_noise_multiplier is not None:
        sigma = config.dp_noise_multiplier
    else:
        assert config.dp_epsilon is not None
        sigma = noise_for_epsilon(config.dp_epsilon, delta, rate, steps)
    epsilon = epsilon_spent(sigma, rate, steps, delta)
    return PrivacySpent(epsilon, delta, sigma, config.dp_clip, rate, steps, sentences)


def example_norms(examples: Any, keys: Any, grads: Any, n_examples: int, n_keys: int) -> Any:
    """The L2 norm of each example's gradient. Entry i adds ``grads[i]`` to parameter row
    ``keys[i]`` (of ``n_keys``) for example ``examples[i]`` (of ``n_examples``); entries of one
    (example, row) are summed before the norm is taken, as the update sums them."""
    import torch

    slot, where = torch.unique(examples * n_keys + keys, return_inverse=True)
    summed = grads.new_zeros(slot.numel(), grads.shape[1]).index_add_(0, where, grads)
    squares = grads.new_zeros(n_examples).index_add_(0, slot // n_keys, summed.square().sum(1))
    return squares.sqrt()


def clip_per_example(examples: Any, keys: Any, grads: Any, n_examples: int, n_keys: int,
                     clip: float) -> Any:
    """``grads`` scaled per example so that each example's gradient has an L2 norm of at most
    ``clip`` (see ``example_norms`` for the layout)."""
    norms = example_norms(examples, keys, grads, n_examples, n_keys)
    factor = (clip / norms.clamp(min=1e-12)).clamp(max=1.0)
    return grads * factor[examples].unsqueeze(1)


class DPSGNSTrainer(SGNSTrainer):
    """The torch trainer with DP-SGD steps over Poisson-sampled lots of sentences."""

    def __init__(self, config: SGNSConfig, corpus: EncodedCorpus, device: str, torch: Any):
        super().__init__(config, corpus, device, torch)
        self.ids = np.asarray(corpus.ids)
        self.ends = np.flatnonzero(self.ids < 0)  # the -1 closing each sentence
        self.starts = np.concatenate([[0], self.ends[:-1] + 1]).astype(np.int64)
        self.privacy = plan_privacy(config, len(self.ends))
        self.sampler = np.random.default_rng(secrets.randbits(64))
        self.noise_gen = torch.Generator(device=device).manual_seed(secrets.randbits(63))

    def run(self, quiet: bool | None) -> int:
        """All DP steps; returns the number of pairs trained."""
        pairs, steps = 0, self.privacy.steps
        with progress_bar("training (torch, DP)", steps, "steps", quiet) as bar:
            for step in range(steps):
                self.words_done = self.total_words * step // steps  # for the lr schedule
                pairs += self.step(self.torch.as_tensor(self._lot(), device=self.device))
                bar.advance(1)
        self.words_done = self.total_words
        return pairs

    def _lot(self) -> np.ndarray:
        """The ids of a Poisson sample of sentences, each closed by its ``-1``."""
        picked = np.flatnonzero(self.sampler.random(len(self.ends)) < self.privacy.sample_rate)
        lengths = self.ends[picked] - self.starts[picked] + 1
        shift = np.repeat(self.starts[picked] - np.cumsum(lengths) + lengths, lengths)
        return self.ids[shift + np.arange(int(lengths.sum()))]

    def step(self, ids: Any) -> int:
        """One DP-SGD step on the lot ``ids``: clip per sentence, add noise, apply; returns
        the number of (center, context) pairs in the lot."""
        examples, keys, grads = self.sentence_gradients(ids)
        vocab = len(self.corpus.words)
        if grads.shape[0]:
            grads = clip_per_example(examples, keys, grads, int((ids < 0).sum()), 2 * vocab,
                                     self.privacy.clip)
        self._noisy_update(keys, grads)
        return int((keys < vocab).sum())  # one input-row entry per pair

    def sentence_gradients(self, ids: Any) -> tuple[Any, Any, Any]:
        """(sentence of each entry, parameter row: input rows 0..V-1 then output rows
        V..2V-1, gradient (n, dim)) of the lot ``ids``, unclipped and not applied."""
        torch, vocab = self.torch, len(self.corpus.words)
        words, sentence = self._subsample(ids)
        sentence = sentence.long()
        if words.numel() < 2:
            empty = torch.zeros(0, dtype=torch.long, device=self.device)
            return empty, empty, torch.zeros(0, self.c.dim, device=self.device)
        centers, contexts = self._pairs(words, sentence)
        if self.c.sg:  # w_in[center] predicts the context word
            out_ids, grad_h, grad_u = self._output_grads(self.w_in[words[centers]],
                                                         words[contexts])
            in_rows, in_grads, out_owner = words[centers], grad_h, sentence[centers]
        else:  # the mean of a center's context vectors predicts the center word
            share = torch.bincount(centers, minlength=words.numel()).clamp(min=1)
            share = share.unsqueeze(1).float()
            h = torch.zeros(words.numel(), self.c.dim, device=self.device)
            h.index_add_(0, centers, self.w_in[words[contexts]])
            out_ids, grad_h, grad_u = self._output_grads(h / share, words)
            in_rows, in_grads, out_owner = words[contexts], (grad_h / share)[centers], sentence
        return (torch.cat([sentence[centers], out_owner.repeat_interleave(out_ids.shape[1])]),
                torch.cat([in_rows, vocab + out_ids.reshape(-1)]),
                torch.cat([in_grads, grad_u.reshape(-1, self.c.dim)]))

    def _noisy_update(self, keys: Any, grads: Any) -> None:
        """Sum the clipped gradients per row, add Gaussian noise to every row of both tables,
        divide by the expected lot size and apply with the update rule."""
        torch, vocab, p = self.torch, len(self.corpus.words), self.privacy
        total = torch.randn(2 * vocab, self.c.dim, generator=self.noise_gen, device=self.device)
        total.mul_(p.noise_multiplier * p.clip).index_add_(0, keys, grads)
        total.div_(max(p.sample_rate * p.sentences, 1.0))
        rows = torch.arange(vocab, device=self.device)
        self._apply(self.w_out, self.acc_out, rows, total[vocab:])
        self._apply(self.w_in, self.acc_in, rows, total[:vocab])
