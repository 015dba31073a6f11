"""Load any ModelVersion as an Encoder, dispatching on its manifest's ``kind``.

Heavy libraries are imported only by the loader of the kind that needs them.
"""

from __future__ import annotations

from collections.abc import Callable

from embedops.errors import InvalidInput
from embedops.models.registry import ModelVersion, Registry
from embedops.types import Encoder


def _static(mv: ModelVersion) -> Encoder:
    from embedops.models.pooling import StaticEncoder

    return StaticEncoder.from_version(mv)


def _transformer(mv: ModelVersion) -> Encoder:
    from embedops.models.transformer import TransformerEncoder

    return TransformerEncoder.from_version(mv)


_LOADERS: dict[str, Callable[[ModelVersion], Encoder]] = {
    "word2vec": _static,
    "fasttext": _static,
    "static": _static,
    "distilled": _static,
    "transformer": _transformer,
}


def load_encoder(ref: str | ModelVersion, registry: Registry | None = None) -> Encoder:
    """The Encoder of a model version (``name``, ``name@N`` or a ModelVersion)."""
    mv = ref if isinstance(ref, ModelVersion) else (registry or Registry()).get(ref)
    loader = _LOADERS.get(mv.kind)
    if loader is None:
        raise InvalidInput(
            f"{mv.ref} has kind '{mv.kind}', which no encoder loads",
            f"known kinds: {', '.join(sorted(_LOADERS))}",
        )
    return loader(mv)
