"""8-bit scalar quantization (FAISS ``IndexScalarQuantizer`` QT_8bit), optional exact rescoring.

Each dimension is stored as one byte (a quarter of float32). With ``rescore_factor > 0`` the
``rescore_factor * k`` best candidates are re-ranked with the full vectors, kept in a
memory-mapped ``vectors.npy`` next to the index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from embedops.errors import InvalidInput
from embedops.index.base import F32, IdArray, faiss_metric
from embedops.index.positional import PositionalIndex
from embedops.index.rescore import DTYPES, Rescoring


@dataclass(frozen=True)
class SQ8Params:
    """``rescore_factor``: candidates fetched per result for exact re-ranking (0 = off);
    ``rescore_dtype``: precision of the stored full vectors (float32 or float16)."""

    rescore_factor: int = 4
    rescore_dtype: str = "float32"

    def __post_init__(self) -> None:
        check_rescore(self.rescore_factor, self.rescore_dtype)


def check_rescore(factor: int, dtype: str) -> None:
    """Validate rescoring parameters shared by the quantized backends."""
    if isinstance(factor, bool) or not isinstance(factor, int) or not 0 <= factor <= 100:
        raise InvalidInput(f"rescore_factor must be an integer in 0..100, got {factor!r}")
    if dtype not in DTYPES:
        raise InvalidInput(f"rescore_dtype must be one of {DTYPES}, got {dtype!r}")


class SQ8Index(Rescoring, PositionalIndex):
    """Scalar-quantized flat index; trains its per-dimension ranges on the first vectors added."""

    kind = "sq8"
    params_cls = SQ8Params
    params: SQ8Params
    search_knobs: ClassVar[dict[str, tuple[int, int]]] = {"rescore_factor": (0, 100)}

    def _reset(self) -> None:
        import faiss

        self._index = faiss.IndexScalarQuantizer(
            self.dim, faiss.ScalarQuantizer.QT_8bit, faiss_metric(self.metric)
        )
        self._new_store()

    def _add(self, vecs: F32, ids: IdArray) -> None:
        if not self._index.is_trained:
            self._index.train(vecs)
        super()._add(vecs, ids)
