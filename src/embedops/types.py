"""Shared types: the Encoder contract and small value objects used across stages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]


@runtime_checkable
class Encoder(Protocol):
    """Turns texts into vectors. Every model kind (static, transformer, distilled) provides one.

    ``version`` is the model-version reference ``name@N`` that every stored vector records;
    ``tokenizer_fingerprint`` identifies how text was split, so mismatches can be refused.
    """

    @property
    def dim(self) -> int: ...

    @property
    def version(self) -> str: ...

    @property
    def tokenizer_fingerprint(self) -> str: ...

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> FloatArray:
        """Return a float32 array of shape ``(len(texts), dim)``; never NaN."""
        ...
