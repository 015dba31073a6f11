"""IVF with product-quantized cells (FAISS ``IndexIVFPQ``) plus exact rescoring.

Each vector is stored as ``m`` codes of ``nbits`` bits (48 bytes for 384-d MiniLM at the
defaults, 1/32 of float32). Product quantization alone ranks neighbours coarsely, so the
``rescore_factor * k`` best candidates are re-ranked exactly from the full vectors, kept in a
memory-mapped ``vectors.npy`` next to the index (page cache, not index RAM).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from embedops.errors import InvalidInput
from embedops.index.base import faiss_metric
from embedops.index.ivf import IVFIndex, _check_int
from embedops.index.rescore import IVFRescoring
from embedops.index.sq8 import check_rescore


def auto_m(dim: int) -> int:
    """Sub-quantizers for ``dim``: the largest divisor of ``dim`` not above ``dim / 8`` (at
    least 8 where ``dim`` allows: small vectors need finer codes to rank anything)."""
    target = max(1, dim // 8, min(dim, 8))
    return max(d for d in range(1, target + 1) if dim % d == 0)


@dataclass(frozen=True)
class IVFPQParams:
    """``nlist``/``nprobe`` as for ivf (0 = auto); ``m`` sub-quantizers (0 = auto, must
    divide dim); ``nbits`` per code; ``rescore_factor`` candidates per result re-ranked exactly
    (0 = off); ``rescore_dtype`` of the stored full vectors."""

    nlist: int = 0
    nprobe: int = 0
    m: int = 0
    nbits: int = 8
    rescore_factor: int = 8
    rescore_dtype: str = "float32"

    def __post_init__(self) -> None:
        _check_int("ivfpq nlist", self.nlist, 0, 1 << 20)
        _check_int("ivfpq nprobe", self.nprobe, 0, 1 << 20)
        _check_int("ivfpq m", self.m, 0, 4096)
        _check_int("ivfpq nbits", self.nbits, 1, 16)
        check_rescore(self.rescore_factor, self.rescore_dtype)


class IVFPQIndex(IVFRescoring, IVFIndex):
    """Compressed IVF index; trains the coarse cells and the codebooks on the first vectors."""

    kind = "ivfpq"
    params_cls = IVFPQParams
    params: IVFPQParams
    search_knobs: ClassVar[dict[str, tuple[int, int]]] = {
        "nprobe": (1, 1 << 20), "rescore_factor": (0, 100),
    }

    def __init__(self, dim: int, metric: str = "cosine", params: Any = None) -> None:
        super().__init__(dim, metric, params)
        m = self.params.m or auto_m(self.dim)
        if self.dim % m:
            raise InvalidInput(
                f"ivfpq m={m} does not divide the dimension {self.dim}",
                f"pick m among the divisors of {self.dim}, or 0 for the default",
            )
        self._m = m

    def _new_index(self, n: int) -> Any:
        import faiss

        quantizer = faiss.IndexFlat(self.dim, faiss_metric(self.metric))
        # a codebook needs as many training points as entries; with few points the codes
        # nearly memorize the (indexed) data, which is what rescoring wants
        nbits = min(self.params.nbits, max(1, int(math.log2(max(n, 2)))))
        index = faiss.IndexIVFPQ(
            quantizer, self.dim, self.nlist_for(n), self._m, nbits, faiss_metric(self.metric)
        )
        return index, quantizer
