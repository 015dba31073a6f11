"""Exact search: every query is compared with every vector (FAISS ``IndexFlat``)."""

from __future__ import annotations

from dataclasses import dataclass

from embedops.index.base import faiss_metric
from embedops.index.positional import PositionalIndex


@dataclass(frozen=True)
class FlatParams:
    """Exact search has no knobs; the class exists so every backend round-trips its params."""


class FlatIndex(PositionalIndex):
    """Brute-force exact search; the reference the other backends' recall is measured against."""

    kind = "flat"
    params_cls = FlatParams

    def _reset(self) -> None:
        import faiss

        self._index = faiss.IndexFlat(self.dim, faiss_metric(self.metric))
