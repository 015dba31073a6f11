"""Versioned use-case artefacts: ``usecases/<kind>/<name>/<n>/`` holding ``manifest.json`` and
``arrays.safetensors`` (no pickle). A version is written to ``.staging`` and renamed into place,
so a half-written artefact is never visible; versions are immutable once published."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from embedops.config import Workspace
from embedops.errors import InvalidInput, NotFound
from embedops.fsio import (
    atomic_write_bytes,
    atomic_write_json,
    file_lock,
    fsync_tree,
    sha256_file,
    staged_dir,
)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ARRAYS = "arrays.safetensors"
MANIFEST = "manifest.json"


def check_name(name: str) -> str:
    """``name`` when it is a valid artefact name (letters, digits, ``_.-``; 64 at most)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(f"invalid artefact name {name!r}",
                           "use letters, digits, '_', '.' or '-' (64 characters at most)")
    return name


def versions(ws: Workspace, kind: str, name: str) -> list[int]:
    """Published versions of ``kind/name``, oldest first."""
    root = ws.usecases_dir / kind / check_name(name)
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.name.isdigit())


def publish(ws: Workspace, kind: str, name: str, arrays: dict[str, np.ndarray],
            manifest: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Write a new version of ``kind/name``; returns ``(version, manifest as stored)``."""
    from safetensors.numpy import save

    root = ws.usecases_dir / kind / check_name(name)
    with file_lock(ws.usecases_dir / f".{kind}.lock"):
        found = versions(ws, kind, name)
        version = (found[-1] + 1) if found else 1
        parent = f"{name}@{found[-1]}" if found else None
        with staged_dir(ws.staging_dir, f"{kind}-{name}") as tmp:
            atomic_write_bytes(tmp / ARRAYS, save({k: np.ascontiguousarray(v)
                                                   for k, v in arrays.items()}))
            stored = {**manifest, "kind": kind, "name": name, "version": version,
                      "ref": f"{name}@{version}", "parent": parent, "created_at": time.time(),
                      "sha256": {ARRAYS: sha256_file(tmp / ARRAYS)}}
            atomic_write_json(tmp / MANIFEST, stored)
            fsync_tree(tmp)
            root.mkdir(parents=True, exist_ok=True)
            tmp.rename(root / str(version))
    return version, stored


def load(ws: Workspace, kind: str, name: str, version: int | None = None
         ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(manifest, arrays)`` of ``kind/name`` at ``version`` (default the newest); the arrays'
    checksum is verified."""
    from safetensors.numpy import load_file

    found = versions(ws, kind, name)
    if not found or (version is not None and version not in found):
        have = ", ".join(f"{name}@{v}" for v in found) or "none"
        raise NotFound(f"no {kind} '{name}'" + (f" version {version}" if version else "")
                       + f" (published: {have})", f"train one first: embedops {kind} ...")
    folder: Path = ws.usecases_dir / kind / name / str(version or found[-1])
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    if sha256_file(folder / ARRAYS) != manifest["sha256"][ARRAYS]:
        from embedops.errors import IntegrityError

        raise IntegrityError(f"{kind} {manifest['ref']}: arrays do not match their checksum",
                             "publish it again")
    return manifest, load_file(str(folder / ARRAYS))


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``"name@3"`` → ``("name", 3)``; ``"name"`` → ``("name", None)`` (the newest)."""
    name, _, ver = ref.partition("@")
    if ver and not ver.isdigit():
        raise InvalidInput(f"bad artefact reference {ref!r}", "write name or name@N")
    return check_name(name), int(ver) if ver else None
