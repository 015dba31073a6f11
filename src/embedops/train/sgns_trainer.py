"""One run of the torch word2vec trainer on a device: embeddings, sampling and update rules.

See :mod:`embedops.train.gpu_sgns` for the algorithm; :func:`~embedops.train.gpu_sgns.train_sgns`
is the entry point.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedops.progress import progress_bar
from embedops.train.sgns_config import SGNSConfig
from embedops.train.sgns_corpus import EncodedCorpus, epoch_chunks


class SGNSTrainer:
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
        words, sentence = self._subsample(ids)
        if words.numel() < 2:
            return 0
        centers, contexts = self._pairs(words, sentence)
        if self.c.sg:
            return self._train_skipgram(words, centers, contexts)
        return self._train_cbow(words, centers, contexts)

    def _subsample(self, ids: Any) -> tuple[Any, Any]:
        """The words of ``ids`` (``-1`` ends a sentence) kept by subsampling, and the index of
        each one's sentence (0 for the words before the first ``-1``)."""
        torch = self.torch
        sentence = torch.cumsum((ids < 0).to(torch.int32), 0)
        keep = ids >= 0
        draw = torch.rand(ids.shape, generator=self.gen, device=self.device)
        keep &= draw < self.keep_prob[ids.clamp(min=0)]
        return ids[keep].long(), sentence[keep]

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
        out_ids, grad_h, grad_u = self._output_grads(h, targets)
        self._apply(self.w_out, self.acc_out, out_ids.reshape(-1), grad_u.reshape(-1, self.c.dim))
        return grad_h

    def _output_grads(self, h: Any, targets: Any) -> tuple[Any, Any, Any]:
        """The negative-sampling loss of hidden vectors ``h`` (b, d) against ``targets`` (b,)
        and ``negative`` noise words each: (output rows (b, 1+K), gradient of ``h`` (b, d),
        gradient of the output rows (b, 1+K, d)), nothing applied."""
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
        return out_ids, grad_h, grad_u

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


def _keep_probability(counts: Any, sample: float) -> Any:
    """word2vec's subsampling: keep ``(sqrt(f/t) + 1) * t/f`` of a word of frequency f."""
    if sample <= 0:
        return counts.new_ones(counts.shape)
    threshold = sample * counts.sum()
    return ((counts / threshold).sqrt() + 1) * threshold / counts
