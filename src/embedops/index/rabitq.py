"""IVF with RaBitQ codes (FAISS ``IndexIVFRaBitQ``) plus exact rescoring.

RaBitQ stores each vector as ``nb_bits`` bits per dimension (1 by default: 48 bytes for 384-d
MiniLM, 1/32 of float32, plus two float factors per vector and the id in its cell) with an
unbiased distance estimate and a known error bound. The estimate ranks neighbours coarsely, so
``max(rescore_factor * k, 64)`` candidates are re-ranked exactly from the full vectors, kept in a
memory-mapped ``vectors.npy`` next to the index (page cache, not index RAM; see
:mod:`embedops.index.rescore`). The rescoring depth is a per-call knob, as is ``nprobe`` and
``qb`` (bits per query coordinate; 4 by default, as FAISS; 0 keeps the query in float, ~30x
slower for no recall gain after rescoring).

``fast_scan`` builds FAISS ``IndexIVFRaBitQFastScan`` instead: the same 1-bit codes packed in
blocks of 32 vectors and scanned with SIMD lookup tables (4 dimensions a lookup); its query
bits are fixed at build (``qb``, no per-call ``qb``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from embedops.errors import InvalidInput
from embedops.index.base import faiss_metric
from embedops.index.ivf import IVFIndex, _check_int
from embedops.index.rescore import IVFRescoring
from embedops.index.sq8 import check_rescore


@dataclass(frozen=True)
class RaBitQParams:
    """``nlist``/``nprobe`` as for ivf (0 = auto); ``nb_bits`` bits per dimension in RAM (1 or
    2); ``qb`` bits per query coordinate (4; 0 = float queries, about 30x slower);
    ``rescore_factor`` candidates per result re-ranked exactly (0 = off); ``rescore_dtype`` of
    the stored full vectors; ``fast_scan``: SIMD block scan (FAISS ``IndexIVFRaBitQFastScan``)."""

    nlist: int = 0
    nprobe: int = 0
    nb_bits: int = 1
    qb: int = 4
    rescore_factor: int = 10
    rescore_dtype: str = "float32"
    fast_scan: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.fast_scan, bool):
            raise InvalidInput(f"rabitq fast_scan must be true or false, got {self.fast_scan!r}")
        _check_int("rabitq nlist", self.nlist, 0, 1 << 20)
        _check_int("rabitq nprobe", self.nprobe, 0, 1 << 20)
        _check_int("rabitq nb_bits", self.nb_bits, 1, 2)
        _check_int("rabitq qb", self.qb, 0, 8)
        check_rescore(self.rescore_factor, self.rescore_dtype)


class RaBitQIndex(IVFRescoring, IVFIndex):
    """Compressed IVF index (<= 2 bits per dimension); trains its cells on the first vectors."""

    kind = "rabitq"
    params_cls = RaBitQParams
    params: RaBitQParams
    search_knobs: ClassVar[dict[str, tuple[int, int]]] = {
        "nprobe": (1, 1 << 20), "qb": (0, 8), "rescore_factor": (0, 100),
    }

    def _new_index(self, n: int) -> Any:
        import faiss

        metric = faiss_metric(self.metric)
        quantizer = faiss.IndexFlat(self.dim, metric)
        index: Any
        if self.params.fast_scan:
            index = faiss.IndexIVFRaBitQFastScan(
                quantizer, self.dim, self.nlist_for(n), metric, 32, True, self.params.nb_bits
            )
        else:
            index = faiss.IndexIVFRaBitQ(
                quantizer, self.dim, self.nlist_for(n), metric, True, self.params.nb_bits
            )
        if self.params.qb or not self.params.fast_scan:  # fast scan needs quantized queries
            index.qb = self.params.qb
        return index, quantizer

    def _set_nprobe(self) -> None:
        super()._set_nprobe()
        if self.params.qb or not self.params.fast_scan:
            self._index.qb = self.params.qb

    def _check_knobs(self, tuning: dict[str, int]) -> None:
        super()._check_knobs(tuning)
        if "qb" in tuning and self.params.fast_scan:
            raise InvalidInput("a fast-scan rabitq index quantizes queries with the qb it was "
                               f"built with ({self.params.qb})", "leave qb out")

    def _faiss_params(self, tuning: dict[str, int] | None) -> Any:
        """Per-call ``nprobe`` and ``qb`` (FAISS ``IVFRaBitQSearchParameters``), cached."""
        if self.params.fast_scan:
            return IVFIndex._faiss_params(self, tuning)  # nprobe only
        if not tuning or not ("nprobe" in tuning or "qb" in tuning):
            return None
        nprobe = min(tuning.get("nprobe", int(self._index.nprobe)), int(self._index.nlist))
        key = (nprobe << 4) | tuning.get("qb", self.params.qb)
        params = self._probe_params.get(key)
        if params is None:
            params = self._new_params(tuning)
            if len(self._probe_params) < 64:  # bounded: values come from callers
                self._probe_params[key] = params
        return params

    def _new_params(self, tuning: dict[str, int] | None) -> Any:
        if self.params.fast_scan:
            return super()._new_params(tuning)  # nprobe only: query bits fixed at build
        import faiss

        tuning = tuning or {}
        params = faiss.IVFRaBitQSearchParameters()
        nprobe = tuning.get("nprobe", int(self._index.nprobe))
        params.nprobe = min(nprobe, int(self._index.nlist))
        params.qb = tuning.get("qb", self.params.qb)
        return params

    def describe(self) -> dict[str, Any]:
        """IVF description plus the bits per dimension held in RAM."""
        out = super().describe()
        out["bits_per_dim"] = self.params.nb_bits
        return out
