"""Checksummed index snapshots with an atomically swapped ``CURRENT`` pointer.

Layout under ``root`` (``workspace.indexes_dir / <collection> / <model-version, @ as _>``)::

    CURRENT                    name of the served snapshot (one line, replaced atomically)
    <snapshot>/manifest.json   sha256 of every file, collection, model version, count, ...
    <snapshot>/keys.json       string item id of every int64 index id (keys[id])
    <snapshot>/index/...       the saved index
    quarantine/<snapshot>/     snapshots that failed their checksums (never served)
    .staging/                  snapshots being written (never visible as published)

``publish`` writes into ``.staging``, fsyncs, renames into place, then swaps ``CURRENT``.
``load_current`` verifies the checksums first: a corrupt snapshot is moved to ``quarantine/``
and the newest older good one is served instead (``CURRENT`` is repointed), or ``Unavailable``
is raised so the caller rebuilds from the catalog. Snapshot names sort by build time.
"""

from __future__ import annotations

import builtins
import json
import os
import secrets
import shutil
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from embedops.errors import IntegrityError, InvalidInput, NotFound, Unavailable
from embedops.fsio import (
    atomic_write_bytes,
    atomic_write_json,
    file_lock,
    fsync_dir,
    fsync_tree,
    sha256_tree,
    staged_dir,
)
from embedops.index import load_index
from embedops.index.base import FaissIndex

CURRENT = "CURRENT"
MANIFEST = "manifest.json"
KEYS = "keys.json"
INDEX_DIR = "index"
QUARANTINE = "quarantine"
STAGING = ".staging"
LOCK = ".lock"
FORMAT = 1


def snapshot_root(indexes_dir: Path, collection: str, model_version: str) -> Path:
    """The snapshot folder of one collection and model version (``@`` becomes ``_``)."""
    return Path(indexes_dir) / collection / model_version.replace("@", "_")


@dataclass(frozen=True)
class SnapshotInfo:
    """What a snapshot's manifest says about it, plus where it lives."""

    name: str
    path: Path
    collection: str
    model_version: str
    item_count: int
    built_at: str
    backend: str
    metric: str
    dim: int
    params: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    current: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (path as a string)."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["path"] = str(self.path)
        return out


@dataclass(frozen=True)
class SnapshotCheck:
    """The outcome of verifying one snapshot: ``problems`` is empty when it is good."""

    name: str
    ok: bool
    problems: list[str]


@dataclass
class LoadedSnapshot:
    """A verified snapshot, loaded: ``keys[id]`` is the item id of index id ``id``."""

    index: FaissIndex
    keys: list[str]
    info: SnapshotInfo


class SnapshotStore:
    """Published index snapshots of one collection and model version; keeps the last ``keep``."""

    def __init__(self, root: str | os.PathLike[str], keep: int = 3) -> None:
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise InvalidInput(f"keep must be a positive integer, got {keep!r}")
        self.root = Path(root)
        self.keep = keep

    # --- publishing -----------------------------------------------------------------------
    def publish(
        self, index: FaissIndex, keys: builtins.list[str], meta: dict[str, Any]
    ) -> SnapshotInfo:
        """Write ``index`` and ``keys`` as a new snapshot and make it current.

        ``meta`` must name ``collection`` and ``model_version``; other keys are kept verbatim.
        Every index id must have a key (``keys[id]``).
        """
        _check_publish(index, keys, meta)
        self.root.mkdir(parents=True, exist_ok=True)
        with file_lock(self.root / LOCK), staged_dir(self.root / STAGING, "snapshot") as tmp:
            name = self._new_name()
            index.save(tmp / INDEX_DIR)
            atomic_write_bytes(tmp / KEYS, json.dumps(list(keys)).encode())
            manifest = _manifest(name, index, meta, sha256_tree(tmp))
            atomic_write_json(tmp / MANIFEST, manifest)
            fsync_tree(tmp)
            os.rename(tmp, self.root / name)
            fsync_dir(self.root)
            self._point_at(name)
            self._prune()
        return self._info(name)

    def rollback(self) -> SnapshotInfo:
        """Point ``CURRENT`` at the newest good snapshot older than the current one."""
        with file_lock(self.root / LOCK):
            current = self._current_name()
            older = [n for n in self._names() if current is None or n < current]
            for name in reversed(older):
                if not self._check(name):
                    self._point_at(name)
                    return self._info(name)
        raise NotFound(
            f"no good snapshot older than {current} in {self.root}",
            "build a new index instead of rolling back",
        )

    # --- reading --------------------------------------------------------------------------
    def load_current(self) -> LoadedSnapshot:
        """Load the current snapshot after verifying it; fall back past corrupt ones.

        A corrupt snapshot is moved to ``quarantine/`` and never served; the newest older good
        one becomes current. ``Unavailable`` when nothing good is left (rebuild from the
        catalog).
        """
        with file_lock(self.root / LOCK):
            current = self._current_name()
            if current is None:
                raise Unavailable(
                    f"no index snapshot has been published in {self.root}",
                    "build the index (embedops index build)",
                )
            candidates = [current] + [n for n in reversed(self._names()) if n < current]
            for name in candidates:
                loaded = self._try_load(name)
                if loaded is not None:
                    if name != current:
                        self._point_at(name)
                    return loaded
        raise Unavailable(
            f"every index snapshot in {self.root} failed verification (moved to {QUARANTINE}/)",
            "rebuild the index from the catalog (embedops index build)",
        )

    def list(self) -> builtins.list[SnapshotInfo]:
        """Published snapshots, oldest first (``current`` marks the served one)."""
        out = []
        for name in self._names():
            try:
                out.append(self._info(name))
            except IntegrityError:
                continue
        return out

    def verify(self, all: bool = True) -> builtins.list[SnapshotCheck]:  # noqa: A002 - contract name
        """Recompute every checksum of every snapshot (``all=False``: only the current one)."""
        current = self._current_name()
        names = self._names() if all else ([current] if current else [])
        return [SnapshotCheck(n, not (p := self._check(n)), p) for n in names]

    def current(self) -> SnapshotInfo | None:
        """The manifest of the current snapshot (not verified), or None."""
        name = self._current_name()
        return self._info(name) if name and (self.root / name).is_dir() else None

    # --- internals ------------------------------------------------------------------------
    def _names(self) -> builtins.list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and not p.name.startswith(".") and p.name != QUARANTINE
        )

    def _new_name(self) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        return f"{stamp}-{secrets.token_hex(3)}"

    def _current_name(self) -> str | None:
        try:
            name = (self.root / CURRENT).read_text().strip()
        except FileNotFoundError:
            return None
        return name or None

    def _point_at(self, name: str) -> None:
        atomic_write_bytes(self.root / CURRENT, (name + "\n").encode())

    def _prune(self) -> None:
        current = self._current_name()
        names = self._names()
        for name in names[: max(0, len(names) - self.keep)]:
            if name != current:
                shutil.rmtree(self.root / name, ignore_errors=True)

    def _read_manifest(self, name: str) -> dict[str, Any]:
        path = self.root / name / MANIFEST
        try:
            manifest: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise IntegrityError(f"cannot read {path}: {exc}") from exc
        if not isinstance(manifest.get("files"), dict):
            raise IntegrityError(f"{path} lists no files")
        return manifest

    def _check(self, name: str) -> builtins.list[str]:
        """Problems found in snapshot ``name`` (empty when every checksum matches)."""
        folder = self.root / name
        try:
            expected = self._read_manifest(name)["files"]
        except IntegrityError as exc:
            return [str(exc)]
        actual = sha256_tree(folder, exclude=(MANIFEST,))
        problems = [f"missing file {f}" for f in sorted(set(expected) - set(actual))]
        problems += [f"unexpected file {f}" for f in sorted(set(actual) - set(expected))]
        problems += [
            f"checksum mismatch in {f}"
            for f in sorted(set(expected) & set(actual))
            if expected[f] != actual[f]
        ]
        return problems

    def _try_load(self, name: str) -> LoadedSnapshot | None:
        problems = self._check(name)
        if not problems:
            try:
                folder = self.root / name
                keys = json.loads((folder / KEYS).read_text())
                return LoadedSnapshot(load_index(folder / INDEX_DIR), keys, self._info(name))
            except (IntegrityError, OSError, ValueError) as exc:
                problems = [f"cannot load: {exc}"]
        self._quarantine(name, problems)
        return None

    def _quarantine(self, name: str, problems: builtins.list[str]) -> None:
        source = self.root / name
        if not source.exists():
            return
        target_dir = self.root / QUARANTINE
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / name
        if target.exists():
            target = target_dir / f"{name}.{secrets.token_hex(3)}"
        os.rename(source, target)
        atomic_write_json(target / "QUARANTINE-REASON.json", {"problems": problems})
        fsync_dir(self.root)

    def _info(self, name: str) -> SnapshotInfo:
        m = self._read_manifest(name)
        return SnapshotInfo(
            name=name,
            path=self.root / name,
            collection=str(m.get("collection", "")),
            model_version=str(m.get("model_version", "")),
            item_count=int(m.get("item_count", 0)),
            built_at=str(m.get("built_at", "")),
            backend=str(m.get("backend", "")),
            metric=str(m.get("metric", "")),
            dim=int(m.get("dim", 0)),
            params=dict(m.get("params") or {}),
            meta=dict(m.get("meta") or {}),
            current=name == self._current_name(),
        )


def _check_publish(index: FaissIndex, keys: list[str], meta: dict[str, Any]) -> None:
    for required in ("collection", "model_version"):
        if not isinstance(meta.get(required), str) or not meta[required]:
            raise InvalidInput(f"snapshot meta must name '{required}' (a non-empty string)")
    ids = index.ids()
    if len(ids) and int(ids.max()) >= len(keys):
        raise InvalidInput(
            f"index id {int(ids.max())} has no key: only {len(keys)} keys given",
            "pass keys so that keys[id] is the item id of every index id",
        )
    if not all(isinstance(k, str) for k in keys):
        raise InvalidInput("snapshot keys must all be strings (item ids)")


def _manifest(
    name: str, index: FaissIndex, meta: dict[str, Any], files: dict[str, str]
) -> dict[str, Any]:
    extra = {k: v for k, v in meta.items() if k not in ("collection", "model_version")}
    return {
        "format": FORMAT,
        "name": name,
        "collection": meta["collection"],
        "model_version": meta["model_version"],
        "item_count": index.count,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "backend": index.kind,
        "metric": index.metric,
        "dim": index.dim,
        "params": asdict(index.params),
        "meta": json.loads(json.dumps(extra, default=str)),
        "files": files,
    }
