"""What happened to each text of an embed request: tokens, out-of-vocabulary tokens (static
models), truncation (transformers), empty texts. Tokenizing only, so it is cheap next to encoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _static(encoder: Any, texts: Sequence[str]) -> dict[str, Any]:
    info = encoder.encode_with_info(list(texts))
    tokens, oov = info.n_tokens.tolist(), info.n_oov.tolist()
    return {
        "tokens": tokens,
        "oov_tokens": oov,
        "oov_rate": [o / t if t else 0.0 for o, t in zip(oov, tokens, strict=True)],
        "truncated": [],
        "empty": [int(i) for i, e in enumerate(info.empty.tolist()) if e],
    }


def _transformer(encoder: Any, texts: Sequence[str]) -> dict[str, Any]:
    encodings, info, keep = encoder.batcher.tokenize(list(texts))
    tokens = [0] * len(texts)
    truncated = []
    for enc, pos in zip(encodings, keep, strict=True):
        tokens[pos] = len(enc.ids)
        if enc.overflowing or len(texts[pos]) > encoder.batcher.max_chars:
            truncated.append(pos)
    return {
        "tokens": tokens,
        "oov_tokens": None,
        "oov_rate": None,
        "truncated": truncated,
        "empty": list(info.empty),
    }


def text_info(encoder: Any, texts: Sequence[str]) -> dict[str, Any]:
    """Per-text ``tokens``, ``oov_tokens``/``oov_rate`` (None for subword transformers) and the
    positions of ``truncated`` and ``empty`` texts (empty ones get the zero vector)."""
    inner = getattr(encoder, "inner", encoder)
    if hasattr(inner, "table") and hasattr(inner, "encode_with_info"):
        return _static(inner, texts)
    if hasattr(inner, "batcher"):
        return _transformer(inner, texts)
    return {"tokens": None, "oov_tokens": None, "oov_rate": None, "truncated": [], "empty": []}
