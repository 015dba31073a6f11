"""Two-stage search: a cheap first stage finds candidates, the precise vectors rerank them.

The first stage is whatever is cheap for the collection: the index of a distilled static model
named by the collection's two-stage config, or the collection's own (quantized, approximate)
index. The rerank scores the candidates exactly with the collection's precise vectors from the
catalog, so the final order is that of exact search over the candidate set.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedops.errors import IntegrityError, InvalidInput
from embedops.fsio import atomic_write_json
from embedops.search.dense import VectorLoader, exact_search
from embedops.search.served import ServedIndex

CONFIG_FILE = "two_stage.json"


@dataclass(frozen=True)
class TwoStageConfig:
    """``cheap_model``: model version of the first stage (None = the collection's own index);
    ``candidates``: how many first-stage results are reranked (at least k)."""

    cheap_model: str | None = None
    candidates: int = 100

    def __post_init__(self) -> None:
        if isinstance(self.candidates, bool) or not isinstance(self.candidates, int) or not (
            1 <= self.candidates <= 10_000
        ):
            raise InvalidInput(f"candidates must be 1..10000, got {self.candidates!r}")

    def save(self, folder: Path) -> None:
        """Write ``two_stage.json`` into ``folder`` atomically."""
        atomic_write_json(folder / CONFIG_FILE, asdict(self))

    @classmethod
    def load(cls, folder: Path) -> TwoStageConfig:
        """The config saved in ``folder``, or the default when there is none."""
        path = folder / CONFIG_FILE
        if not path.exists():
            return cls()
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise IntegrityError(
                f"cannot read {path}: {exc}", "set it again with configure_two_stage"
            ) from exc


def two_stage_search(
    first: ServedIndex,
    cheap_query: np.ndarray,
    precise_query: np.ndarray,
    k: int,
    candidates: int,
    load_precise: VectorLoader,
    metric: str,
    accept: Callable[[str], bool] | None = None,
    search_params: dict[str, Any] | None = None,
) -> list[tuple[str, float]]:
    """Top ``k`` after exact rerank of the first stage's ``max(candidates, k)`` results
    (``search_params`` tune the first stage's index)."""
    pool = first.search(cheap_query, max(candidates, k), accept=accept,
                        search_params=search_params)
    ids, vectors = load_precise([key for key, _ in pool])
    return exact_search(precise_query, ids, vectors, metric, k)
