"""The corpus of the torch word2vec trainer: vocabulary, memory-mapped token ids, epoch chunks.

``encode_corpus`` maps the corpus to int32 token ids once (sentence ends marked ``-1``);
``epoch_chunks`` streams them back each epoch in bounded chunks, in file order or in blocks in a
random order (see :mod:`embedops.train.gpu_sgns`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embedops.errors import CorpusError


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
