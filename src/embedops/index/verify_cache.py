"""Snapshot manifests whose seal was already checked, so an unchanged one is not checked again.

``index_status`` (the console's overview, ``/metrics``) reads the manifest of every snapshot of
every collection on each call; parsing it and recomputing its seal each time is most of that
call. A checked manifest is kept here under its file's identity: device, inode, size, and the
modification and change times in nanoseconds. Any write to the file, or its replacement by
another, changes that identity, so the next read checks the seal again and reports the damage.

A file whose times are less than ``RACY_S`` seconds old when it is read is not kept: a write in
the same clock tick as the one before could leave its times unchanged (git's "racily clean"
case), so only files that have been still for a while are trusted by identity.
"""

from __future__ import annotations

import copy
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

RACY_S = 2.0
MAX_ENTRIES = 4096

_Key = tuple[int, int, int, int, int, bool]
_lock = threading.Lock()
_cache: OrderedDict[str, tuple[_Key, dict[str, Any]]] = OrderedDict()
_counts = {"hits": 0, "checks": 0}


def _identity(st: os.stat_result, legacy_ok: bool) -> _Key:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, legacy_ok)


def read_checked(path: Path, legacy_ok: bool,
                 check: Callable[[bytes], dict[str, Any]]) -> dict[str, Any]:
    """The manifest at ``path`` as ``check(its bytes)`` returns it (``check`` raises when the
    seal fails; nothing is kept then), from the cache while the file is unchanged. ``OSError``
    when the file cannot be read. The caller gets its own copy."""
    with open(path, "rb") as fh:
        before = _identity(os.fstat(fh.fileno()), legacy_ok)
        with _lock:
            found = _cache.get(str(path))
            if found is not None and found[0] == before:
                _cache.move_to_end(str(path))
                _counts["hits"] += 1
                return copy.deepcopy(found[1])
        data = fh.read()
        after = os.fstat(fh.fileno())
    manifest = check(data)
    with _lock:
        _counts["checks"] += 1
        still = before == _identity(after, legacy_ok)
        if still and time.time() - max(after.st_mtime, after.st_ctime) >= RACY_S:
            _cache[str(path)] = (before, copy.deepcopy(manifest))
            _cache.move_to_end(str(path))
            while len(_cache) > MAX_ENTRIES:
                _cache.popitem(last=False)
    return manifest


def counts() -> dict[str, int]:
    """How many reads were answered from the cache (``hits``) and how many checked a seal."""
    with _lock:
        return dict(_counts)


def clear() -> None:
    """Forget every checked manifest (the next read of each checks its seal again)."""
    with _lock:
        _cache.clear()
