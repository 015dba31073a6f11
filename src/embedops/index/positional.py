"""Backends whose FAISS labels are row positions (flat codes: exact flat, scalar quantizer).

FAISS ``remove_ids`` on flat-code indexes compacts the rows in order, so the id of label ``i``
is simply ``self._ids[i]`` and removal mirrors the compaction with ``np.delete``: no id map is
stored twice.
"""

from __future__ import annotations

import numpy as np

from embedops.index.base import F32, FaissIndex, IdArray


class PositionalIndex(FaissIndex):
    """Shared add/remove/search for flat-code backends; subclasses build ``self._index``."""

    def _add(self, vecs: F32, ids: IdArray) -> None:
        self._index.add(vecs)
        self._ids = np.concatenate([self._ids, ids])

    def _search(self, q: F32, k: int, tuning: dict[str, int] | None) -> tuple[IdArray, F32]:
        distances, labels = self._faiss_search(q, k, tuning)
        return self._map_labels(labels, self._ids), self._to_scores(distances)
