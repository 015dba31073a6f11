"""Request limits. Each refusal is a 413 that names the limit and the value that broke it."""

from __future__ import annotations

from collections.abc import Sequence

from embedops.errors import LimitExceeded
from embedops.serve.settings import ServeSettings


def check_batch(settings: ServeSettings, n: int, what: str = "texts") -> None:
    """At most ``max_batch`` texts/items/ids per request."""
    if n > settings.max_batch:
        raise LimitExceeded(
            f"{n} {what} in one request; the limit is {settings.max_batch}",
            "split the request into batches",
        )


def check_texts(settings: ServeSettings, texts: Sequence[str], what: str = "text") -> None:
    """Every text at most ``max_text_chars`` characters."""
    limit = settings.max_text_chars
    for i, text in enumerate(texts):
        if len(text) > limit:
            raise LimitExceeded(
                f"{what} {i} has {len(text)} characters; the limit is {limit}",
                "shorten or split long texts before sending them",
            )


def check_k(settings: ServeSettings, k: int) -> None:
    """``k`` at most ``max_k``."""
    if k > settings.max_k:
        raise LimitExceeded(
            f"k={k} is over the limit of {settings.max_k}", f"ask for at most {settings.max_k}"
        )
