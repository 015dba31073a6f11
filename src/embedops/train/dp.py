"""Differentially private training of the torch word2vec trainer: DP-SGD, one sentence a unit.

Privacy unit: one *sentence* of the corpus, i.e. one line of the training text (a paragraph or
document as the corpus reader yields it), not one (center, context) pair. Neighbouring corpora
differ by adding or removing one line. A secret lives in a sentence, and a sentence yields many
pairs (each kept word with every word of its window, each with its negatives); a guarantee per
pair would bound what one pair reveals while a sentence could reveal up to its number of pairs
times more. Clipping per sentence bounds the whole sentence's effect on every step, so the
guarantee is about sentences.

One step (DP-SGD, Abadi et al. 2016):

1. Poisson sampling: each sentence joins the step's lot on its own with probability
   q = ``dp_batch_sentences`` / N (what the accountant assumes); an epoch is about 1/q steps.
2. The lot's pairs (dynamic window, subsampling of frequent words, negatives) and their
   gradients are made as in the non-private trainer, all at the step's parameters, and not
   applied; a large lot is taken in parts of whole sentences (``MICRO_TOKENS`` ids) so memory
   stays bounded. The windows, subsampling and negatives come from the seeded generator:
   randomness inside each sentence's gradient, drawn independently of the data, which the
   clipping bounds whatever it draws.
3. Per-sentence clipping: a sentence's gradient over both tables (input and output vectors, its
   pairs and negatives summed per row) is scaled to an L2 norm of at most ``dp_clip``. The
   gradient is sparse, so its norm is taken over the rows it touches only (``example_norms``).
4. Gaussian noise of standard deviation ``noise_multiplier * dp_clip`` is added to *every*
   row of both tables (to untouched rows too: otherwise which rows moved would tell which words
   were in the lot; of the input table alone with ``dp_frozen_output``, whose output table is
   a fixed random one drawn from ``seed`` and never trained), the sum is divided by the
   expected lot size, and the update rule (Adagrad or SGD) applies it, which is
   post-processing and spends no privacy.

The accountant is opacus' RDP accountant of the Poisson-subsampled Gaussian mechanism
composed over the steps (add/remove-one adjacency, sensitivity ``dp_clip``, N taken as
public): epsilon spent at ``delta`` for (noise, q, steps), and for a target epsilon the noise
multiplier that reaches it. The sampling and the noise come from fresh OS entropy, never from
``seed`` (a known seed would let anyone replay the noise), so DP runs are not bit-reproducible.

Utility (docs/benchmarks/privacy.md): what decides it is the signal of a row per step against
the noise on it, about ``f * lot / (noise_multiplier * sqrt(rows * dim))`` for a word in a
share f of the sentences and a sentence whose clipped gradient is spread over ``rows`` rows.
So DP runs want large lots (thousands of sentences) and few epochs (the accountant's noise
grows slowly with the lot at a fixed epsilon), few negatives and strong subsampling (fewer
rows per sentence), a small ``dim``, a vocabulary of frequent words (``max_vocab``: rare words
get no usable signal, and the noise on every row of both tables is the price of each row), a
clip at or below the typical sentence norm (Adagrad is scale-free, so a clip below every norm
costs nothing), ``dp_frozen_output`` (the clip budget and the noise go to a line's input
rows only), and more sentences: the noise on the mean gradient falls as 1/N. Measured on 2M
words (69k lines) it is still at or near chance at epsilon 1-8; see the page.

Public vectors (``use_public_output``): the frozen output table can be a model's of a public
corpus instead of a random one, and the input table can start at that model's input vectors
(public pre-training, DP fine-tuning); both are data-independent as far as the private corpus
goes, so the accounting is unchanged. Measured with the shipped WordNet glosses as the public
corpus (docs/benchmarks/privacy.md): a public output table alone did not lift DP at epsilon 8
off chance; with a public start DP models are above chance at epsilon 1-8 on WS353 (and
SimLex at 1 and 4), but no better than the public model alone, and the DP steps take Google
analogies from 0.21 to 0.01: the utility comes from the public data.

Not covered by the guarantee: the vocabulary (words seen ``min_count`` times, or the
``max_vocab`` most frequent) and the word counts (subsampling and the negative distribution)
are taken from the corpus as usual, so the guarantee is for the trained vectors given the
vocabulary; a string repeated in k sentences is protected only at group level (about k times
epsilon).
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

MICRO_TOKENS = 16_384  # ids per gradient pass within a lot: bounds memory, not privacy
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
        self.norm_log: list[tuple[float, float]] | None = None  # see _record
        self.frozen = config.dp_frozen_output
        if self.frozen:  # a fixed random output table from the seed: data-independent
            scale = 1.0 / math.sqrt(config.dim)
            self.w_out = torch.randn(self.w_out.shape, generator=self.gen, device=device) * scale

    def use_public_output(self, table: Any, start: Any = None) -> None:
        """Freeze the output table at ``table`` (rows in the vocabulary's order) instead of the
        random one, e.g. the output vectors of a model trained on a *public* corpus, so the
        private input vectors learn to predict words as that model does; with ``start``, also
        start the input table there (public pre-training, DP fine-tuning). The guarantee
        holds only if neither depends on the private corpus beyond its vocabulary (which is
        not covered anyway); the output table is not saved with the model."""
        if not self.frozen:
            raise InvalidInput("a public output table needs dp_frozen_output")
        shape = (len(self.corpus.words), self.c.dim)
        for name, value in (("output", table), ("start", start)):
            if value is not None and tuple(np.shape(value)) != shape:
                raise InvalidInput(f"the public {name} table is {np.shape(value)}, need {shape}")
        self.w_out = self.torch.as_tensor(np.asarray(table, dtype=np.float32),
                                          device=self.device)
        if start is not None:
            self.w_in.copy_(self.torch.as_tensor(np.asarray(start, dtype=np.float32)))

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
        the number of (center, context) pairs in the lot.

        The lot's gradients are all taken at the same parameters, in parts of whole sentences
        (``MICRO_TOKENS`` ids each) so that memory stays bounded however large the lot; a
        sentence is never split, so clipping per part is clipping per sentence."""
        vocab, p = len(self.corpus.words), self.privacy
        tables = 1 if self.frozen else 2
        total = self.torch.randn(tables * vocab, self.c.dim, generator=self.noise_gen,
                                 device=self.device)
        total.mul_(p.noise_multiplier * p.clip)
        pairs = 0
        for part in sentence_parts(ids, MICRO_TOKENS):
            examples, keys, grads = self.sentence_gradients(part)
            if not grads.shape[0]:
                continue
            n_sentences = int((part < 0).sum())
            norms = example_norms(examples, keys, grads, n_sentences, 2 * vocab)
            self._record(norms, p.clip)
            factor = (p.clip / norms.clamp(min=1e-12)).clamp(max=1.0)
            total.index_add_(0, keys, grads * factor[examples].unsqueeze(1))
            pairs += int((keys < vocab).sum())  # one input-row entry per pair
        self._noisy_update(total)
        return pairs

    def _record(self, norms: Any, clip: float) -> None:
        """Keep the median raw sentence norm and the share clipped, for tuning ``dp_clip`` on
        public or dev data only: they describe the training sentences, so they are never
        written to the manifest or the result."""
        if self.norm_log is not None and norms.numel():
            self.norm_log.append((float(norms.median()), float((norms > clip).float().mean())))

    def sentence_gradients(self, ids: Any) -> tuple[Any, Any, Any]:
        """(sentence of each entry, parameter row: input rows 0..V-1 then output rows
        V..2V-1 (none with a frozen output table), gradient (n, dim)) of the lot ``ids``,
        unclipped and not applied."""
        torch, vocab = self.torch, len(self.corpus.words)
        words, sentence = self._subsample(ids)
        sentence = sentence.long()
        if words.numel() < 2:
            empty = torch.zeros(0, dtype=torch.long, device=self.device)
            return empty, empty, torch.zeros(0, self.c.dim, device=self.device)
        centers, contexts = self._pairs(words, sentence)
        grads = self._input_grads if self.frozen else self._output_grads
        if self.c.sg:  # w_in[center] predicts the context word
            out_ids, grad_h, grad_u = grads(self.w_in[words[centers]], words[contexts])
            in_rows, in_grads, out_owner = words[centers], grad_h, sentence[centers]
        else:  # the mean of a center's context vectors predicts the center word
            share = torch.bincount(centers, minlength=words.numel()).clamp(min=1)
            share = share.unsqueeze(1).float()
            h = torch.zeros(words.numel(), self.c.dim, device=self.device)
            h.index_add_(0, centers, self.w_in[words[contexts]])
            out_ids, grad_h, grad_u = grads(h / share, words)
            in_rows, in_grads, out_owner = words[contexts], (grad_h / share)[centers], sentence
        if grad_u is None:  # a frozen output table: the input rows alone
            return sentence[centers], in_rows, in_grads
        return (torch.cat([sentence[centers], out_owner.repeat_interleave(out_ids.shape[1])]),
                torch.cat([in_rows, vocab + out_ids.reshape(-1)]),
                torch.cat([in_grads, grad_u.reshape(-1, self.c.dim)]))

    def _input_grads(self, h: Any, targets: Any) -> tuple[Any, Any, None]:
        """``_output_grads`` without the output rows' gradients (a frozen output table)."""
        torch = self.torch
        negs = self._negatives(targets.numel())
        out_ids = torch.cat([targets.unsqueeze(1), negs], dim=1)
        u = self.w_out[out_ids]
        g = torch.sigmoid(torch.bmm(u, h.unsqueeze(2)).squeeze(2))
        g[:, 0] -= 1.0  # d loss / d logit: the target's label is 1, the negatives' 0
        if self.c.skip_target_negatives:
            g[:, 1:].masked_fill_(negs == targets.unsqueeze(1), 0.0)
        return out_ids, torch.bmm(g.unsqueeze(1), u).squeeze(1), None

    def _noisy_update(self, total: Any) -> None:
        """Apply ``total`` (the clipped gradients summed per row plus the Gaussian noise on
        every row of both tables), divided by the expected lot size, with the update rule."""
        torch, vocab, p = self.torch, len(self.corpus.words), self.privacy
        total.div_(max(p.sample_rate * p.sentences, 1.0))
        rows = torch.arange(vocab, device=self.device)
        if not self.frozen:
            self._apply(self.w_out, self.acc_out, rows, total[vocab:])
        self._apply(self.w_in, self.acc_in, rows, total[:vocab])


def sentence_parts(ids: Any, size: int) -> list[Any]:
    """``ids`` (sentences each closed by ``-1``) cut after a sentence's ``-1`` into parts of
    about ``size`` ids; a sentence longer than ``size`` is a part of its own."""
    n = int(ids.numel())
    if n <= size:
        return [ids]
    ends = (ids < 0).nonzero().flatten().cpu().numpy()
    if ends.size == 0:
        return [ids]
    marks = np.searchsorted(ends, np.arange(size, n, size))
    cuts = np.unique(ends[np.minimum(marks, ends.size - 1)] + 1).tolist()
    parts, start = [], 0
    for cut in [*cuts, n]:
        if cut > start:
            parts.append(ids[start:cut])
            start = cut
    return parts
