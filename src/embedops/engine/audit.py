"""The audit trail: one JSON line per admin action in ``<workspace>/audit.jsonl``.

Append-only and fsynced before the action is reported done, so a crash cannot lose an entry
that a caller was told about. Entries name the key id (never the key) and the time.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from embedops.config import Workspace
from embedops.fsio import file_lock

_LOCK = threading.Lock()


def audit_path(workspace: Workspace) -> Path:
    """Where the audit trail of ``workspace`` lives."""
    return workspace.audit_path


def record(workspace: Workspace, action: str, who: str, **details: Any) -> dict[str, Any]:
    """Append one entry ``{ts, action, who, ...details}`` and fsync it; return the entry."""
    entry = {"ts": round(time.time(), 3), "action": action, "who": who, **details}
    line = (json.dumps(entry, sort_keys=True, default=str) + "\n").encode()
    path = audit_path(workspace)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The thread lock orders writers in this process; the file lock orders processes (the CLI
    # and a running server may both write).
    with _LOCK, file_lock(path.with_suffix(".lock")):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
    return entry


def read(workspace: Workspace) -> list[dict[str, Any]]:
    """Every entry, oldest first (an unfinished last line from a crash is skipped)."""
    path = audit_path(workspace)
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
