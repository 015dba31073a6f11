"""ANN index backends over FAISS and their checksummed snapshots.

``make_index(kind, dim, metric, params)`` builds an empty index of one backend (``flat``,
``hnsw``, ``ivf``, ``ivfpq``, ``sq8``); ``load_index(folder)`` reads one back. Every backend
keeps the same contract, the ``Index`` protocol (see :mod:`embedops.index.protocol`): int64
ids, scores higher-is-better; :class:`~embedops.index.base.FaissIndex` implements it.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from embedops.errors import IntegrityError, InvalidInput
from embedops.index.base import METRICS, FaissIndex, read_meta
from embedops.index.flat import FlatIndex, FlatParams
from embedops.index.hnsw import HNSWIndex, HNSWParams
from embedops.index.ivf import IVFIndex, IVFParams
from embedops.index.ivfpq import IVFPQIndex, IVFPQParams
from embedops.index.protocol import Index
from embedops.index.sq8 import SQ8Index, SQ8Params

BACKENDS: dict[str, type[FaissIndex]] = {
    cls.kind: cls for cls in (FlatIndex, HNSWIndex, IVFIndex, IVFPQIndex, SQ8Index)
}

__all__ = [
    "BACKENDS",
    "METRICS",
    "FlatParams",
    "HNSWParams",
    "IVFPQParams",
    "IVFParams",
    "Index",
    "SQ8Params",
    "load_index",
    "make_index",
    "make_params",
]


def make_params(kind: str, params: dict[str, Any] | Any | None = None) -> Any:
    """The typed parameters of backend ``kind`` from a dict (unknown keys are refused)."""
    cls = backend(kind).params_cls
    if params is None:
        return cls()
    if isinstance(params, cls):
        return params
    if not isinstance(params, dict):
        raise InvalidInput(f"index params must be a mapping, got {type(params).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise InvalidInput(
            f"unknown {kind} index parameter(s): {', '.join(unknown)}",
            f"{kind} takes: {', '.join(sorted(known)) or 'no parameters'}",
        )
    return cls(**params)


def backend(kind: str) -> type[FaissIndex]:
    """The class of backend ``kind``."""
    if kind not in BACKENDS:
        raise InvalidInput(
            f"unknown index kind '{kind}'", f"use one of: {', '.join(sorted(BACKENDS))}"
        )
    return BACKENDS[kind]


def make_index(
    kind: str, dim: int, metric: str = "cosine", params: dict[str, Any] | Any | None = None
) -> Index:
    """An empty index of backend ``kind`` for ``dim``-dimensional vectors under ``metric``."""
    return _make(kind, dim, metric, params)


def _make(kind: str, dim: int, metric: str, params: dict[str, Any] | Any | None) -> FaissIndex:
    return backend(kind)(dim, metric, make_params(kind, params))


def load_index(folder: str | Path) -> Index:
    """Read an index saved with ``Index.save(folder)``, whatever its backend."""
    path = Path(folder)
    meta = read_meta(path)
    try:
        index = _make(meta["kind"], int(meta["dim"]), meta["metric"], meta["params"])
    except (KeyError, TypeError, InvalidInput) as exc:
        raise IntegrityError(
            f"{path / 'index.json'} is not a valid index description: {exc}",
            "rebuild the index from the catalog",
        ) from exc
    index._restore(path, dict(meta.get("state") or {}))
    return index
