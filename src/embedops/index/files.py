"""The on-disk layout of a saved index: ``index.json``, ``index.faiss`` and ``ids.npy``.

``index.json`` holds the format version, backend kind, dim, metric, params and the backend's
own state; backends may add files of their own next to these (``_save_extra``).
"""

from __future__ import annotations

import json
import mmap
from pathlib import Path
from typing import Any

import numpy as np

from embedops.errors import IntegrityError
from embedops.fsio import atomic_write_json
from embedops.index.protocol import IdArray

META_FILE = "index.json"
FAISS_FILE = "index.faiss"
IDS_FILE = "ids.npy"
FORMAT_VERSION = 1


def write_arrays(path: Path, faiss_index: Any, ids: IdArray) -> None:
    """Write the FAISS index (when there is one) and the id array into ``path``."""
    import faiss

    if faiss_index is not None:  # None: a trained backend that has seen no data yet
        faiss.write_index(faiss_index, str(path / FAISS_FILE))
    np.save(path / IDS_FILE, ids)


def write_meta(path: Path, meta: dict[str, Any]) -> None:
    """Write ``index.json`` (atomically, last: a folder without it is no index)."""
    atomic_write_json(path / META_FILE, {"format": FORMAT_VERSION, **meta})


def read_arrays(path: Path, dim: int, mapped: bool = False) -> tuple[Any, IdArray]:
    """The FAISS index (None when none was saved) and ids written by ``write_arrays``,
    checked against ``dim``; IntegrityError when they are unreadable or disagree. ``mapped``:
    the ids are memory-mapped (``load_ids``)."""
    import faiss

    try:
        has_index = (path / FAISS_FILE).exists()
        index = faiss.read_index(str(path / FAISS_FILE)) if has_index else None
        ids = load_ids(path, mapped)
    except (OSError, RuntimeError, ValueError) as exc:
        raise IntegrityError(
            f"cannot read the index in {path}: {exc}", "rebuild the index from the catalog"
        ) from exc
    if index is None:
        if len(ids):
            raise IntegrityError(f"{path} lists ids but has no {FAISS_FILE}")
    elif index.d != dim or index.ntotal < len(ids):
        raise IntegrityError(
            f"{path} holds {index.ntotal} vectors of dimension {index.d}; "
            f"index.json says {len(ids)} of dimension {dim}",
            "rebuild the index from the catalog",
        )
    return index, ids


def load_ids(path: Path, mapped: bool = False) -> IdArray:
    """``ids.npy`` of a saved index as int64; ``mapped``: memory-mapped read-only (page
    cache, not the process's own memory; a write makes a new array in memory)."""
    ids = np.load(path / IDS_FILE, mmap_mode="r" if mapped else None)
    # int64 as written: a plain ndarray view of the mapping; another dtype: a copy
    return np.asarray(ids) if ids.dtype == np.int64 else ids.astype(np.int64)


def resident_nbytes(array: np.ndarray) -> int:
    """Bytes of ``array`` held in the process's own memory: 0 for a memory-mapped file's
    pages (shared, evictable page cache, read back from the file on demand)."""
    base: Any = array
    while base is not None:
        if isinstance(base, mmap.mmap):
            return 0
        base = getattr(base, "base", None)
    return int(array.nbytes)


def read_meta(folder: Path) -> dict[str, Any]:
    """The ``index.json`` of a saved index, or IntegrityError if missing or unreadable."""
    try:
        meta: dict[str, Any] = json.loads((folder / META_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise IntegrityError(
            f"cannot read {folder / META_FILE}: {exc}", "rebuild the index from the catalog"
        ) from exc
    if meta.get("format") != FORMAT_VERSION:
        raise IntegrityError(
            f"index format {meta.get('format')} in {folder} is not {FORMAT_VERSION}",
            "rebuild the index with this embedops version",
        )
    return meta
