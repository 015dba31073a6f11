"""Validation of what callers hand the engine, in one place.

Every surface (Python, CLI, HTTP) reaches the engine through these checks, so a bad input is
refused with the same error and the same words whichever way it came in. The one mismatch
check (``check_model_match``) is used for every comparison of "what an index or collection was
built with" against "what is about to be used with it".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from embedops.errors import DimensionMismatch, FingerprintMismatch, InvalidInput, LimitExceeded
from embedops.search.dense import check_k
from embedops.search.models import MODES

MAX_QUERY_CHARS = 10_000
MAX_UPSERT_BATCH = 10_000
MAX_EMBED_BATCH = 10_000
_ITEM_FIELDS = {"id", "text", "metadata"}

__all__ = [
    "MAX_EMBED_BATCH", "MAX_QUERY_CHARS", "MAX_UPSERT_BATCH", "as_items", "check_k",
    "check_mode", "check_model_match", "check_modes_inputs", "check_query",
    "check_search_params", "check_texts", "check_vector",
]


def as_items(items: Sequence[Any]) -> list[Any]:
    """``ItemIn`` objects from ItemIn or ``{"id", "text", "metadata", ...}`` dicts (validated).

    A dict may also carry further top-level fields (as a JSONL record given to ``ingest`` may):
    they become metadata, so ``upsert`` and ``ingest`` accept the same record shapes."""
    from embedops.store.models import ItemIn

    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Sequence):
        raise InvalidInput("items must be a list of {id, text, metadata} objects")
    if len(items) > MAX_UPSERT_BATCH:
        raise LimitExceeded(
            f"{len(items)} items in one call; the limit is {MAX_UPSERT_BATCH}",
            "send them in batches, or use ingest for files",
        )
    out = [_as_item(ItemIn, pos, item) for pos, item in enumerate(items)]
    seen: set[str] = set()
    dups = [it.id for it in out if it.id in seen or seen.add(it.id)]  # type: ignore[func-returns-value]
    if dups:
        raise InvalidInput(f"duplicate item ids in one call: {len(dups)}", "send each id once")
    return out


def _as_item(item_type: Any, pos: int, item: Any) -> Any:
    if isinstance(item, item_type):
        return item
    if not isinstance(item, Mapping) or "id" not in item or "text" not in item:
        raise InvalidInput(
            f"item at position {pos} is not an object with id, text and metadata",
            'write {"id": "1", "text": "...", "metadata": {}}',
        )
    metadata = item.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise InvalidInput(f"the metadata of item at position {pos} is not an object",
                           'write "metadata": {"field": "value"}')
    extra = {k: v for k, v in item.items() if k not in _ITEM_FIELDS}
    if extra:
        metadata = {**extra, **metadata}
    return item_type(id=item["id"], text=item["text"], metadata=dict(metadata))


def check_texts(texts: Sequence[str], limit: int = MAX_EMBED_BATCH) -> list[str]:
    """A list of strings, at most ``limit`` of them."""
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise InvalidInput("texts must be a list of strings", 'pass ["one text", ...]')
    if len(texts) > limit:
        raise LimitExceeded(f"{len(texts)} texts in one call; the limit is {limit}",
                            "split the input into batches")
    for pos, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidInput(f"text at position {pos} is {type(text).__name__}, not a string")
    return list(texts)


def check_mode(mode: str) -> str:
    """Validate a search mode (``two-stage`` is accepted for ``two_stage``)."""
    normal = mode.replace("-", "_") if isinstance(mode, str) else mode
    if normal not in MODES:
        raise InvalidInput(f"unknown search mode {mode!r}", f"use one of {', '.join(MODES)}")
    return str(normal)


def check_query(query: str) -> str:
    """Validate a query string: non-empty, at most ``MAX_QUERY_CHARS`` characters."""
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("the query is empty", "pass the text to search for")
    if len(query) > MAX_QUERY_CHARS:
        raise LimitExceeded(
            f"the query has {len(query)} characters; the limit is {MAX_QUERY_CHARS}",
            "shorten the query",
        )
    return query


def check_vector(vector: Any, dim: int, collection: str) -> np.ndarray:
    """Validate a query vector: finite numbers, one row of the collection's dimension."""
    try:
        with np.errstate(over="ignore"):  # beyond float32: inf, refused below
            vec = np.asarray(vector, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("the query vector is not a list of numbers",
                           "pass a flat list of floats") from exc
    if vec.ndim == 2 and vec.shape[0] == 1:
        vec = vec[0]
    if vec.ndim != 1 or vec.size == 0:
        raise InvalidInput(f"the query vector has shape {vec.shape}; one flat row is needed",
                           "pass a flat list of floats")
    if not np.isfinite(vec).all():
        raise InvalidInput("the query vector holds NaN or infinite values",
                           "pass finite numbers only")
    if vec.size != int(dim):
        raise DimensionMismatch(
            f"the query vector has dim {vec.size} but collection '{collection}' holds vectors "
            f"of dim {dim}",
            "embed the query with the collection's model version (or send the query text)",
        )
    return vec


def check_modes_inputs(mode: str, query: str | None, vector: Any) -> None:
    """Which of query text and query vector each mode takes (a vector skips encoding)."""
    if vector is None:
        if query is None:
            raise InvalidInput("neither a query nor a query vector was given",
                               "pass the text to search for, or its vector")
        return
    if mode in ("lexical", "two_stage"):
        raise InvalidInput(f"{mode} search needs the query text, not a vector",
                           "send the query text, or use mode dense or hybrid")
    if mode == "dense" and query is not None:
        raise InvalidInput("dense search takes a query or a query vector, not both",
                           "send one of them")
    if mode == "hybrid" and query is None:
        raise InvalidInput("hybrid search needs the query text for its lexical half",
                           "send the query text along with the vector")


def check_model_match(
    what: str, built: Mapping[str, Any], version: str, dim: int, fingerprint: str | None,
    fix: str,
) -> None:
    """Refuse to use model ``version`` (``dim``, tokenizer ``fingerprint``) with ``what`` (an
    index or a collection) that was built with ``built`` (``model_version``, ``dim``,
    ``tokenizer_fingerprint``). The message names both sides; ``fix`` says what to do."""
    built_dim = built.get("dim")
    left = f"{built.get('model_version')} (dim {built_dim})"
    right = f"{version} (dim {dim})"
    if built_dim is not None and int(built_dim) != int(dim):
        raise DimensionMismatch(f"{what} was built with {left}, the query encoder is {right}",
                                fix)
    fp = built.get("tokenizer_fingerprint")
    if fp and fingerprint and fp != fingerprint:
        raise FingerprintMismatch(
            f"{what} was built with {built.get('model_version')} (tokenizer {fp}), the query "
            f"encoder is {version} (tokenizer {fingerprint})",
            fix,
        )


def check_search_params(
    search_params: Mapping[str, Any] | None, mode: str
) -> dict[str, Any] | None:
    """Per-query index knobs as a plain dict (the index checks names and values), refused in
    lexical mode, which has no index to tune."""
    if not search_params:
        return None
    if not isinstance(search_params, Mapping):
        raise InvalidInput(
            f"search_params must be a mapping such as {{\"ef_search\": 128}}, "
            f"got {type(search_params).__name__}"
        )
    if mode == "lexical":
        raise InvalidInput(
            "search_params tune the vector index; lexical search has none",
            "drop search_params, or search in dense, hybrid or two_stage mode",
        )
    return dict(search_params)
