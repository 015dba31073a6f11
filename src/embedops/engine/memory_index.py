"""Indexes of encrypted collections live in memory only (issue 21, item 4).

An index is derived from the vectors, and a vector of a text gives much of the text away
(nearest words, inversion attacks); a FAISS file also lists every item id. For a collection
encrypted at rest nothing of the index is written to disk: ``index build`` (and a search or a
server start that finds no index in memory) builds it from the catalog, decrypting the vectors
into memory with the collection's key, and serves it from there. The snapshot folder of such an
index holds one plain file, ``memory-index.json``: the backend and its params, so a restart
builds the same kind of index (no vectors, no ids, no counts).

The trade-off, against encrypting the snapshot files with the collection key:

* no plaintext ever reaches the disk, not even for the moment between a FAISS ``write_index``
  and its encryption (the backends write several files: index, ids, tombstones, rescore
  vectors), and a stolen disk holds no ciphertext of the index to attack either;
* but every process that serves the collection pays a build at start (a server at warm-up, each
  CLI ``search`` or ``golden run``): about the cost of ``index build``, seconds for 100k items
  with ``flat``, minutes with ``hnsw`` on millions; and there are no snapshots to ``verify``
  on disk or to ``rollback`` to (``rollback`` answers NotFound; rebuild instead). A build in one
  process is not seen by another (each builds its own; live writes reach all of them through
  the catalog as usual).

Snapshots of an encrypted collection written by an earlier embedops (in plain) are deleted when
the index is next built or loaded, with a warning in the log.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from embedops.fsio import atomic_write_json

log = logging.getLogger(__name__)
SPEC_FILE = "memory-index.json"
STORAGE = "memory"


def write_spec(root: Path, kind: str, params: dict[str, Any] | None) -> None:
    """Remember the backend and params of the last build (all that is written to disk)."""
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_json(root / SPEC_FILE, {"kind": kind, "params": dict(params or {})})


def read_spec(root: Path) -> tuple[str, dict[str, Any] | None] | None:
    """``(kind, params)`` of the last in-memory build, None when there is none (or the file is
    unreadable: a rebuild then uses the default backend)."""
    try:
        spec = json.loads((root / SPEC_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(spec, dict) or not isinstance(spec.get("kind"), str):
        return None
    params = spec.get("params")
    return spec["kind"], dict(params) if isinstance(params, dict) else None


def purge_plain(root: Path, collection: str) -> int:
    """Delete every snapshot, pointer, quarantined or staged copy under ``root`` (an encrypted
    collection's snapshot folder): they hold vectors and ids in plain. Returns how many entries
    were removed (0 normally)."""
    if not root.is_dir():
        return 0
    removed = 0
    for entry in root.iterdir():
        if entry.name == SPEC_FILE or entry.name == ".lock":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed += 1
    if removed:
        log.warning("deleted %d index file(s) or snapshot(s) of encrypted collection %s that "
                    "held vectors in plain; its index is kept in memory only", removed,
                    collection)
    return removed


def memory_meta(meta: dict[str, Any], count: int) -> dict[str, Any]:
    """The snapshot-like summary of an in-memory build (what status shows as its snapshot)."""
    now = datetime.now(UTC)
    return {
        **meta,
        "name": f"memory-{now.strftime('%Y%m%dT%H%M%S%fZ')}",
        "built_at": now.isoformat(timespec="seconds"),
        "item_count": count,
        "backend": meta.get("kind"),
        "storage": STORAGE,
        "current": True,
        "loaded_at": time.time(),
    }


def is_memory(meta: dict[str, Any]) -> bool:
    """True for the meta of an in-memory build."""
    return meta.get("storage") == STORAGE
