"""The ``Index`` contract every ANN backend keeps (FAISS in process is one implementation).

* ids are int64 and ``>= 0``; every vector has its own id and one dimension ``dim``;
* ``search(queries, k) -> (ids, scores)``: both ``(m, k)``, ids int64, scores float32, best
  first; rows with fewer than ``k`` results are padded with id ``-1`` and score ``-inf``;
* **higher score is better for every metric**: ``cosine`` (vectors and queries compared at unit
  length), ``ip`` (inner product), ``l2`` (minus the *squared* euclidean distance);
* ``search_params`` tune one call only (``ef_search``, ``nprobe``, ``rescore_factor``: see
  ``search_knobs``), never the index's settings or other threads' searches;
* bad input (wrong dimension, NaN, duplicate or negative ids, bad ``k`` or knobs) raises an
  ``EmbedopsError``; the caller's arrays are never modified.

``tests/contract/test_index_contract.py`` checks every backend against this contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

IdArray = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]


@runtime_checkable
class Index(Protocol):
    """An ANN index over int64 ids (see the module docstring for the contract)."""

    @property
    def kind(self) -> str:
        """The backend's name, as ``make_index`` takes it."""
        ...

    @property
    def dim(self) -> int: ...

    @property
    def metric(self) -> str: ...

    @property
    def params(self) -> Any:
        """The backend's frozen params dataclass (``asdict`` gives what ``make_index`` takes)."""
        ...

    @property
    def search_knobs(self) -> Mapping[str, tuple[int, int]]:
        """Per-call search knob -> (lowest, highest) accepted value."""
        ...

    @property
    def count(self) -> int:
        """Number of live (searchable) vectors."""
        ...

    def ids(self) -> IdArray:
        """The live ids (a copy)."""
        ...

    def build(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Replace the whole content with ``vectors`` (n, dim) under ``ids`` (n,)."""
        ...

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Add new vectors; an id already present raises AlreadyExists."""
        ...

    def upsert(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Add vectors, replacing those whose id is already present."""
        ...

    def remove(self, ids: np.ndarray | list[int]) -> int:
        """Remove ids (unknown ones are ignored); returns how many were removed."""
        ...

    def search(
        self, queries: np.ndarray, k: int, search_params: dict[str, Any] | None = None
    ) -> tuple[IdArray, F32]:
        """The ``k`` best (ids, scores) of each query row, padded with ``-1`` / ``-inf``."""
        ...

    def check_search_params(self, search_params: dict[str, Any] | None) -> dict[str, int]:
        """Validated per-call knobs (``{}`` for None), or InvalidInput naming what is allowed."""
        ...

    def save(self, folder: str | Path) -> None:
        """Write the index to ``folder``; ``load(folder)`` reads it back."""
        ...

    @classmethod
    def load(cls, folder: str | Path) -> Index:
        """Read an index written by ``save``."""
        ...

    def memory_bytes(self) -> int:
        """RAM the index holds."""
        ...

    def describe(self) -> dict[str, Any]:
        """Kind, metric, dim, params, count and memory, for status pages."""
        ...
