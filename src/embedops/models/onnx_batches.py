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

    def __init__(self, tokenizer_file: Path, max_seq_length: int, pad_id: int = 0) -> None:
        from tokenizers import Tokenizer

        try:
            self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        except Exception as exc:  # tokenizers raises a bare Exception on a bad file
            raise IntegrityError(f"cannot read tokenizer {tokenizer_file}: {exc}") from exc
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_seq_length)
        self.max_seq_length = max_seq_length
        self.max_chars = max_seq_length * CHARS_PER_TOKEN_BOUND
        self.pad_id = pad_id

    def tokenize(self, texts: list[str]) -> tuple[list[Any], EncodeInfo, list[int]]:
        """Encodings of the non-empty texts, the info, and the positions they came from."""
        keep = [i for i, t in enumerate(texts) if t.strip()]
        inputs = [texts[i][: self.max_chars] for i in keep]
        cut = [len(inputs[j]) < len(texts[i]) for j, i in enumerate(keep)]
        encodings = self.tokenizer.encode_batch(inputs) if inputs else []
        truncated = sum(1 for e, c in zip(encodings, cut, strict=True) if c or e.overflowing)
        empty = tuple(i for i, t in enumerate(texts) if not t.strip())
        return encodings, EncodeInfo(len(texts), truncated, sum(cut), empty), keep

    def batches(
        self, encodings: list[Any], positions: list[int], batch_size: int
    ) -> Iterator[Batch]:
        """Batches of ``batch_size`` encodings of similar length, longest first."""
        if batch_size < 1:
            raise InvalidInput(f"batch_size must be >= 1, got {batch_size}")
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(-lengths, kind="stable")
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            yield Batch(np.asarray(positions)[rows], self._pad([encodings[r] for r in rows]))

    def _pad(self, encodings: list[Any]) -> dict[str, np.ndarray]:
        width = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        types = np.zeros((len(encodings), width), dtype=np.int64)
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            ids[row, :n] = enc.ids
            mask[row, :n] = 1
            types[row, :n] = enc.type_ids
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def pool(hidden: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """Pool token vectors ``(batch, seq, dim)`` into sentence vectors (mean, cls or max)."""
    if mode == "cls":
        return hidden[:, 0, :]
    weights = mask.astype(hidden.dtype)
    if mode == "max":
        return np.where(weights[:, :, None] > 0, hidden, -np.inf).max(axis=1)
    summed = np.einsum("bsd,bs->bd", hidden, weights)
    return summed / np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
