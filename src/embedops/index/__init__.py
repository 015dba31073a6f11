"""ANN index backends (FAISS in process, Milvus external) and their checksummed snapshots.

``make_index(kind, dim, metric, params)`` builds an empty index of one backend (``flat``,
``hnsw``, ``ivf``, ``ivfpq``, ``sq8``, ``rabitq`` over FAISS; ``milvus``); ``load_index(folder)``
reads one back. Every backend keeps the same contract, the ``Index`` protocol (see
:mod:`embedops.index.protocol`): int64 ids, scores higher-is-better;
:class:`~embedops.index.base.FaissIndex` and :class:`~embedops.index.milvus.MilvusIndex`
implement it. A backend whose data lives outside the snapshot folder (Milvus) also has the
hooks ``activate_saved`` and ``release_saved``, which the snapshot store calls through the
functions of the same names here (no-ops for FAISS).
"""

from __future__ import annotations

import logging
from dataclasses import fields
from pathlib import Path
from typing import Any

from embedops.errors import IntegrityError, InvalidInput
from embedops.index.base import METRICS, FaissIndex, read_meta
from embedops.index.flat import FlatIndex, FlatParams
from embedops.index.hnsw import HNSWIndex, HNSWParams
from embedops.index.ivf import IVFIndex, IVFParams
from embedops.index.ivfpq import IVFPQIndex, IVFPQParams
from embedops.index.milvus import MilvusIndex
from embedops.index.milvus_params import MilvusParams
from embedops.index.protocol import Index
from embedops.index.rabitq import RaBitQIndex, RaBitQParams
from embedops.index.sq8 import SQ8Index, SQ8Params

BACKENDS: dict[str, type[Any]] = {
    cls.kind: cls
    for cls in (FlatIndex, HNSWIndex, IVFIndex, IVFPQIndex, SQ8Index, RaBitQIndex, MilvusIndex)
}
#: The backends that run in process (FAISS); the rest keep their data in a server.
IN_PROCESS = ("flat", "hnsw", "ivf", "ivfpq", "sq8", "rabitq")

__all__ = [
    "BACKENDS",
    "METRICS",
    "FlatParams",
    "HNSWParams",
    "IVFPQParams",
    "IVFParams",
    "Index",
    "MilvusParams",
    "RaBitQParams",
    "SQ8Params",
    "activate_saved",
    "load_index",
    "make_index",
    "make_params",
    "release_saved",
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


def backend(kind: str) -> type[Any]:
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


def _make(kind: str, dim: int, metric: str, params: dict[str, Any] | Any | None
          ) -> FaissIndex | MilvusIndex:
    index: FaissIndex | MilvusIndex = backend(kind)(dim, metric, make_params(kind, params))
    return index


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


def activate_saved(folder: str | Path, collection: str, model_version: str) -> None:
    """Before a snapshot becomes current: let a backend that keeps its data in a server point
    its own name for the served index at the index saved in ``folder`` (a Milvus alias).
    A no-op for in-process backends."""
    path = Path(folder)
    meta = read_meta(path)
    hook = getattr(BACKENDS.get(str(meta.get("kind"))), "activate_saved", None)
    if hook is not None:
        hook(path, meta, collection, model_version)


def release_saved(folder: str | Path) -> None:
    """Before a snapshot folder is deleted: let a server backend free what the index saved in
    ``folder`` holds (a Milvus collection). Never raises: pruning goes on regardless."""
    path = Path(folder)
    try:
        meta = read_meta(path)
        hook = getattr(BACKENDS.get(str(meta.get("kind"))), "release_saved", None)
        if hook is not None:
            hook(path, meta)
    except Exception as exc:  # noqa: BLE001 - an orphaned collection is logged, not fatal
        logging.getLogger(__name__).warning("could not release the index in %s: %s", path, exc)
