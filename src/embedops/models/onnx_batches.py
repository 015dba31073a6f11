"""Tokenization and length-bucketed batching shared by the ONNX and torch backends.

Texts are tokenized once with the fast (Rust) tokenizer, sorted by token length, cut into
batches of similar length and padded only to the longest member of each batch, so almost no
compute goes to padding; results are put back in input order. Truncation is never silent: each
text cut to ``max_seq_length`` tokens, or cut to ``max_chars`` characters before tokenizing
(megabyte strings), is counted.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from embedops.errors import IntegrityError, InvalidInput

#: A WordPiece token spans at most 100 characters (longer words become [UNK]), so a text cut
#: here still yields at least ``max_seq_length`` tokens unless it is mostly whitespace.
CHARS_PER_TOKEN_BOUND = 100


@dataclass(frozen=True)
class EncodeInfo:
    """What happened to the inputs of one ``encode_with_info`` call.

    ``truncated``: texts longer than ``max_seq_length`` tokens (only their start is encoded);
    ``cut_chars``: texts first cut to the safe character length (a subset of ``truncated``);
    ``empty``: positions of empty or whitespace-only texts, which get the zero vector.
    """

    n: int
    truncated: int
    cut_chars: int
    empty: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``EncodeInfo(**d)`` rebuilds it."""
        return {
            "n": self.n, "truncated": self.truncated, "cut_chars": self.cut_chars,
            "empty": list(self.empty),
        }


@dataclass
class Batch:
    """One padded batch: ``positions`` are the input indices of its rows."""

    positions: np.ndarray
    arrays: dict[str, np.ndarray]


def check_texts(texts: Sequence[str]) -> list[str]:
    """Refuse a bare string or non-string items, naming the first bad position."""
    if isinstance(texts, str | bytes):
        raise InvalidInput(
            "encode() takes a list of texts, got a single string",
            "wrap it in a list: encode([text])",
        )
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise InvalidInput(
                f"text at position {i} is {type(text).__name__}, not a string",
                "pass only strings; use '' for a missing text (it gets the zero vector)",
            )
    return out


class Batcher:
    """Tokenizes texts with a ``tokenizer.json`` and yields length-sorted padded batches."""

    def __init__(
        self,
        tokenizer_file: Path,
        max_seq_length: int,
        pad_id: int | None = None,
        lowercase: bool = False,
    ) -> None:
        from tokenizers import Tokenizer

        try:
            self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        except Exception as exc:  # tokenizers raises a bare Exception on a bad file
            raise IntegrityError(f"cannot read tokenizer {tokenizer_file}: {exc}") from exc
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_seq_length)
        self.max_seq_length = max_seq_length
        self.max_chars = max_seq_length * CHARS_PER_TOKEN_BOUND
        self.pad_id = _pad_id(tokenizer_file) if pad_id is None else pad_id
        self.lowercase = lowercase
        self._prompt_lengths: dict[str, int] = {}

    def prompt_length(self, prompt: str) -> int:
        """Tokens of ``prompt`` as it starts a text, without a trailing special token: the
        positions sentence-transformers leaves out of pooling when a model excludes prompts."""
        if prompt not in self._prompt_lengths:
            enc = self.tokenizer.encode(prompt.lower() if self.lowercase else prompt)
            n = len(enc.ids)
            if n and enc.special_tokens_mask[-1]:
                n -= 1
            self._prompt_lengths[prompt] = n
        return self._prompt_lengths[prompt]

    def tokenize(
        self, texts: list[str], prompt: str = ""
    ) -> tuple[list[Any], EncodeInfo, list[int]]:
        """Encodings of the non-empty texts (each after ``prompt``), the info, and the
        positions they came from."""
        keep = [i for i, t in enumerate(texts) if t.strip()]
        inputs = [prompt + texts[i][: self.max_chars] for i in keep]
        cut = [len(inputs[j]) - len(prompt) < len(texts[i]) for j, i in enumerate(keep)]
        if self.lowercase:
            inputs = [t.lower() for t in inputs]
        # the fast variant skips character offsets, which nothing here reads
        encode = getattr(self.tokenizer, "encode_batch_fast", self.tokenizer.encode_batch)
        encodings = encode(inputs) if inputs else []
        truncated = sum(1 for e, c in zip(encodings, cut, strict=True) if c or e.overflowing)
        empty = tuple(i for i, t in enumerate(texts) if not t.strip())
        return encodings, EncodeInfo(len(texts), truncated, sum(cut), empty), keep

    def batches(
        self, encodings: list[Any], positions: list[int], batch_size: int
    ) -> Iterator[Batch]:
        """Batches of at most ``batch_size`` encodings of similar length, longest first.

        Lengths are sorted, then cut where padding would cost more than another run (see
        ``cut_sorted``): one long text no longer pads a batch of short ones to its length."""
        if batch_size < 1:
            raise InvalidInput(f"batch_size must be >= 1, got {batch_size}")
        lengths = np.fromiter((len(e) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(-lengths, kind="stable")
        bounds = cut_sorted(lengths[order], batch_size)
        where = np.asarray(positions)
        for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
            rows = order[start:stop]
            yield Batch(where[rows], self._pad([encodings[r] for r in rows]))

    def _pad(self, encodings: list[Any]) -> dict[str, np.ndarray]:
        """``input_ids`` / ``attention_mask`` / ``token_type_ids`` right-padded to the longest
        encoding, filled in one pass each (no Python loop over rows)."""
        lengths = np.fromiter((len(e) for e in encodings), dtype=np.int64, count=len(encodings))
        mask = np.arange(int(lengths.max()))[None, :] < lengths[:, None]
        total = int(lengths.sum())
        ids = np.full(mask.shape, self.pad_id, dtype=np.int64)
        ids[mask] = np.fromiter(chain.from_iterable(e.ids for e in encodings), np.int64, total)
        types = np.zeros(mask.shape, dtype=np.int64)
        types[mask] = np.fromiter(chain.from_iterable(e.type_ids for e in encodings), np.int64,
                                  total)
        return {"input_ids": ids, "attention_mask": mask.astype(np.int64), "token_type_ids": types}


#: The fixed cost of one more encoder run, in padded tokens: what a run costs beyond its
#: ``rows x width`` tokens (the call, and the small-matrix inefficiency of a short batch).
RUN_COST_TOKENS = 96


def cut_sorted(lengths: np.ndarray, max_rows: int, run_cost: int = RUN_COST_TOKENS) -> list[int]:
    """Boundaries ``[0, ..., n]`` that split ``lengths`` (sorted longest first) into runs of at
    most ``max_rows`` rows with the least total cost, a run costing its padded tokens
    (rows x its first, longest, length) plus ``run_cost``.

    An exact dynamic programme over the sorted lengths (``O(n * max_rows)``, vectorised per
    end): a batch of 55 short texts and one long one becomes two runs instead of 56 rows padded
    to the long one, while equal lengths still fill whole batches."""
    n = len(lengths)
    if n == 0:
        return [0]
    widths = np.asarray(lengths, dtype=np.float64)
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    start_of = np.zeros(n + 1, dtype=np.int64)
    for end in range(1, n + 1):
        first = max(0, end - max_rows)
        starts = np.arange(first, end)
        cost = best[first:end] + (end - starts) * widths[first:end] + run_cost
        pick = int(np.argmin(cost))
        best[end] = cost[pick]
        start_of[end] = first + pick
    bounds = [n]
    while bounds[-1] > 0:
        bounds.append(int(start_of[bounds[-1]]))
    return bounds[::-1]


def pool(hidden: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """Pool token vectors ``(batch, seq, dim)`` into sentence vectors (any one pooling mode of
    ``st_pipeline.POOLING_MODES``)."""
    from embedops.models.st_pipeline import pool_tokens

    return pool_tokens(hidden, mask, [mode])


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def _pad_id(tokenizer_file: Path) -> int:
    """The id of the tokenizer's pad token (from ``tokenizer.json``'s padding or
    ``tokenizer_config.json``), 0 when it names none."""
    import json

    try:
        data = json.loads(tokenizer_file.read_text())
        padding = data.get("padding") or {}
        if "pad_id" in padding:
            return int(padding["pad_id"])
        cfg_path = tokenizer_file.with_name("tokenizer_config.json")
        token = json.loads(cfg_path.read_text()).get("pad_token") if cfg_path.is_file() else None
        if isinstance(token, dict):
            token = token.get("content")
        for added in data.get("added_tokens") or []:
            if token is not None and added.get("content") == token:
                return int(added["id"])
    except (OSError, ValueError):
        pass
    return 0
