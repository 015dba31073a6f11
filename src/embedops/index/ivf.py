"""Inverted-file search (FAISS ``IndexIVFFlat``): k-means cells, only ``nprobe`` cells scanned.

The coarse quantizer is trained on the vectors of the first ``build`` (or first ``add``). With
``nlist = 0`` the cell count is chosen from that size, ``4 * sqrt(n)`` capped so that every cell
gets at least 39 training points (FAISS's own guidance); ``nprobe = 0`` scans one cell in six
(at least 16). Cells do not re-balance as data grows: rebuild when the index has grown several
times past its training size (``describe()['trained_on']``). Labels are the caller's ids, so
``remove`` deletes in place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from embedops.errors import InvalidInput
from embedops.index.base import F32, FaissIndex, IdArray, faiss_metric, is_identity


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{name} must be an integer in {low}..{high}, got {value!r}")


def auto_nlist(n: int) -> int:
    """Cells for ``n`` training vectors: ``4 * sqrt(n)``, at most ``n / 39``, at least 1."""
    return max(1, min(int(4 * math.sqrt(max(n, 1))), n // 39))


def auto_nprobe(nlist: int) -> int:
    """Cells scanned per query: one in six, at least 16 (all of them for tiny indexes).

    Tuned on MiniLM vectors of 20k dictionary definitions; the recall at each setting is in
    docs/benchmarks/index.md.
    """
    return min(nlist, max(16, nlist // 6))


@dataclass(frozen=True)
class IVFParams:
    """``nlist`` cells (0 = from the data), ``nprobe`` cells scanned per query (0 = auto)."""

    nlist: int = 0
    nprobe: int = 0

    def __post_init__(self) -> None:
        _check_int("ivf nlist", self.nlist, 0, 1 << 20)
        _check_int("ivf nprobe", self.nprobe, 0, 1 << 20)


class IVFIndex(FaissIndex):
    """IVF with full vectors in the cells; ``IVFPQIndex`` builds on it with compressed cells."""

    kind = "ivf"
    params_cls: ClassVar[type] = IVFParams
    labels_are_positions = False

    def _reset(self) -> None:
        self._index = None
        self._trained_on = 0
        self._probe_params: dict[int, Any] = {}

    def _new_index(self, n: int) -> Any:
        import faiss

        quantizer = faiss.IndexFlat(self.dim, faiss_metric(self.metric))
        metric = faiss_metric(self.metric)
        return faiss.IndexIVFFlat(quantizer, self.dim, self.nlist_for(n), metric), quantizer

    def nlist_for(self, n: int) -> int:
        """The cell count used when training on ``n`` vectors."""
        return min(self.params.nlist or auto_nlist(n), max(n, 1))

    def _train(self, vecs: F32) -> None:
        self._index, self._quantizer = self._new_index(len(vecs))
        self._index.train(vecs)
        self._trained_on = len(vecs)
        self._set_nprobe()

    def _set_nprobe(self) -> None:
        nlist = int(self._index.nlist)
        self._index.nprobe = min(nlist, self.params.nprobe or auto_nprobe(nlist))

    def _add(self, vecs: F32, ids: IdArray) -> None:
        if self._index is None:
            self._train(vecs)
        self._index.add_with_ids(vecs, ids)
        self._ids = np.concatenate([self._ids, ids])

    search_knobs: ClassVar[dict[str, tuple[int, int]]] = {"nprobe": (1, 1 << 20)}

    def _search(self, q: F32, k: int, tuning: dict[str, int] | None) -> tuple[IdArray, F32]:
        distances, labels = self._faiss_search(q, k, tuning)
        return labels, self._to_scores(distances)

    def _faiss_params(self, tuning: dict[str, int] | None) -> Any:
        """Per-call ``nprobe`` (capped at the cell count), one FAISS object per value."""
        if not tuning or "nprobe" not in tuning:
            return None
        nprobe = min(tuning["nprobe"], int(self._index.nlist))
        params = self._probe_params.get(nprobe)
        if params is None:
            params = self._new_params(tuning)
            if len(self._probe_params) < 64:  # bounded: values come from callers
                self._probe_params[nprobe] = params
        return params

    def ids_are_rows(self) -> bool:
        """True when the ids are ``0..n-1`` in insertion order (a segment's): FAISS's labels
        are then the local ids a segment's tombstones name."""
        return is_identity(self._ids)

    def _new_params(self, tuning: dict[str, int] | None) -> Any:
        """A new FAISS ``SearchParameters`` for validated ``tuning`` (the index's own
        ``nprobe`` where it names none)."""
        import faiss

        nprobe = (tuning or {}).get("nprobe", int(self._index.nprobe))
        params = faiss.SearchParametersIVF()
        params.nprobe = min(nprobe, int(self._index.nlist))
        return params

    def selected_params(self, tuning: dict[str, int] | None, selector: Any) -> Any:
        """FAISS search parameters for validated ``tuning`` that skip the labels ``selector``
        rejects (a segment's tombstones); a new object: the caller keeps it, and the
        selector, alive as long as it searches with it (``search_selected``)."""
        params = self._new_params(tuning)
        params.sel = selector
        return params

    def search_selected(self, q: F32, k: int, tuning: dict[str, int] | None, params: Any
                        ) -> tuple[IdArray, F32]:
        """``_search`` (checked queries, validated ``tuning``) with ``selected_params``:
        only labels the selector accepts come back, ``k`` of them where the cells hold them."""
        distances, labels = self._faiss_call(q, k, params)
        return labels, self._to_scores(distances)

    def _state(self) -> dict[str, Any]:
        return {"trained_on": self._trained_on}

    def describe(self) -> dict[str, Any]:
        """Base description plus the cell count, nprobe and training size."""
        out = super().describe()
        if self._index is not None:
            out.update(nlist=int(self._index.nlist), nprobe=int(self._index.nprobe))
        out["trained_on"] = self._trained_on
        return out

    def _restore(self, path: Path, state: dict[str, Any]) -> None:
        super()._restore(path, state)
        self._trained_on = int(state.get("trained_on", 0))
        if self._index is not None:
            self._set_nprobe()
