"""Graph search (FAISS ``IndexHNSWFlat``) with tombstones for removal.

HNSW graphs cannot drop a node, so ``remove`` marks the node's label dead (a tombstone) and
searches skip dead labels with a FAISS ID selector, which keeps walking the graph until ``k``
live results are found (no over-fetch guess needed). When tombstones exceed
``rebuild_fraction`` of the stored nodes, the graph is rebuilt from its own stored vectors, so
the dead nodes stop costing memory and search time. Labels are row positions: the id of label
``i`` is ``self._ids[i]`` (dead rows included until the rebuild).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from embedops.errors import IntegrityError, InvalidInput
from embedops.index.base import F32, FaissIndex, IdArray, faiss_metric

DEAD_FILE = "dead.npy"
LABELS_FILE = "labels.npy"


@dataclass(frozen=True)
class HNSWParams:
    """``M`` links per node, ``ef_construction`` build beam, ``ef_search`` query beam (raise
    it for recall, lower it for speed), ``rebuild_fraction`` tombstone share that triggers a
    rebuild."""

    M: int = 32
    ef_construction: int = 100
    ef_search: int = 64
    rebuild_fraction: float = 0.2

    def __post_init__(self) -> None:
        for name in ("M", "ef_construction", "ef_search"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 2 <= value <= 4096:
                raise InvalidInput(f"hnsw {name} must be an integer in 2..4096, got {value!r}")
        if not 0.0 < float(self.rebuild_fraction) <= 1.0:
            raise InvalidInput(
                f"hnsw rebuild_fraction must be in (0, 1], got {self.rebuild_fraction!r}"
            )


class HNSWIndex(FaissIndex):
    """Approximate search on a navigable small-world graph."""

    kind = "hnsw"
    params_cls = HNSWParams
    params: HNSWParams

    def _reset(self) -> None:
        import faiss

        self._index = faiss.IndexHNSWFlat(self.dim, self.params.M, faiss_metric(self.metric))
        self._index.hnsw.efConstruction = self.params.ef_construction
        self._index.hnsw.efSearch = self.params.ef_search
        self._labels: IdArray = np.empty(0, dtype=np.int64)  # id of every stored node
        self._dead = np.empty(0, dtype=bool)
        self._skip_dead: tuple[Any, ...] | None = None  # (dead-row selector, its parts)
        self._ef_params: dict[int | None, Any] = {}  # FAISS search parameters per ef_search

    @property
    def tombstones(self) -> int:
        """Removed nodes still in the graph (skipped by search until the next rebuild)."""
        return len(self._labels) - len(self._ids)

    def _add(self, vecs: F32, ids: IdArray) -> None:
        self._index.add(vecs)
        self._labels = np.concatenate([self._labels, ids])
        self._dead = np.concatenate([self._dead, np.zeros(len(ids), dtype=bool)])
        self._ids = self._labels[~self._dead]

    def _remove(self, ids: IdArray) -> int:
        hit = np.isin(self._labels, ids) & ~self._dead
        self._dead |= hit
        self._ids = self._labels[~self._dead]
        if self.tombstones > self.params.rebuild_fraction * len(self._labels):
            self._rebuild()
        else:
            self._skip_dead = self._dead_filter()
            self._ef_params = {}
        return int(hit.sum())

    def _after_copy(self) -> None:
        self._skip_dead = self._dead_filter()  # a selector over the copy's own dead rows
        self._ef_params = {}

    def _dead_filter(self) -> tuple[Any, ...] | None:
        """A selector that skips tombstoned labels (built once per remove, not per query)."""
        import faiss

        if not self.tombstones:
            return None
        batch = faiss.IDSelectorBatch(np.flatnonzero(self._dead).astype(np.int64))
        return faiss.IDSelectorNot(batch), batch  # the batch must outlive the selector

    search_knobs: ClassVar[dict[str, tuple[int, int]]] = {"ef_search": (1, 1 << 16)}

    def _faiss_params(self, tuning: dict[str, int] | None) -> Any:
        """Per-call ``efSearch`` and the tombstone filter, one FAISS object per ef value
        (cached: they are read-only during a search, so threads can share them)."""
        ef = tuning.get("ef_search") if tuning else None
        if ef is None and self._skip_dead is None:
            return None  # the graph's own efSearch, nothing to skip
        params = self._ef_params.get(ef)
        if params is None:
            import faiss

            params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
            params.efSearch = ef or self.params.ef_search
            if self._skip_dead is not None:
                params.sel = self._skip_dead[0]
            if len(self._ef_params) < 64:  # bounded: values come from callers
                self._ef_params[ef] = params
        return params

    def _rebuild(self) -> None:
        """Re-insert the live nodes into a fresh graph (vectors come from the graph's storage)."""
        live = np.flatnonzero(~self._dead)
        vectors = self._index.storage.reconstruct_n(0, self._index.ntotal)[live]
        ids = self._labels[live]
        self._reset()
        if len(ids):
            self._add(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        else:
            self._ids = np.empty(0, dtype=np.int64)

    def _search(self, q: F32, k: int, tuning: dict[str, int] | None) -> tuple[IdArray, F32]:
        distances, labels = self._faiss_search(q, k, tuning)
        return self._map_labels(labels, self._labels), self._to_scores(distances)

    def _extra_memory(self) -> int:
        return int(self._labels.nbytes + self._dead.nbytes)

    def _save_extra(self, path: Path) -> None:
        np.save(path / LABELS_FILE, self._labels)
        np.save(path / DEAD_FILE, self._dead)

    def _restore(self, path: Path, state: dict[str, Any]) -> None:
        super()._restore(path, state)
        self._index.hnsw.efSearch = self.params.ef_search
        try:
            self._labels = np.load(path / LABELS_FILE).astype(np.int64, copy=False)
            self._dead = np.load(path / DEAD_FILE).astype(bool)
        except (OSError, ValueError) as exc:
            raise IntegrityError(f"cannot read tombstones in {path}: {exc}") from exc
        if self._dead.shape != self._labels.shape or len(self._labels) != self._index.ntotal:
            raise IntegrityError(f"{path}: ids, tombstones and graph sizes disagree")
        self._ids = self._labels[~self._dead]
        self._skip_dead = self._dead_filter()
        self._ef_params = {}
