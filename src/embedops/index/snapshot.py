"""Checksummed index snapshots with an atomically swapped ``CURRENT`` pointer.

Layout under ``root`` (``workspace.indexes_dir / <collection> / <model-version, @ as _>``)::

    CURRENT                    name of the served snapshot (one line, replaced atomically)
    <snapshot>/manifest.json   sha256 of every file, collection, model version, count, ...,
                               sealed: ``seal`` is the sha256 of the rest (canonical JSON)
    <snapshot>/keys.json       string item id of every int64 index id (keys[id])
    <snapshot>/index/...       the saved index
    <snapshot>/segments/<seg>/ instead of keys.json and index/ in a segmented snapshot
                               (format 3): one index and keys.json per segment, tombstones
                               in the manifest (see :mod:`embedops.index.segments`)
    quarantine/<snapshot>/     snapshots that failed their checksums (never served)
    .staging/                  snapshots being written (never visible as published)

``publish`` writes into ``.staging``, fsyncs, renames into place, then swaps ``CURRENT``.
``load_current`` verifies the checksums first: a corrupt snapshot is moved to ``quarantine/``
and the newest older good one is served instead (``CURRENT`` is repointed), or ``Unavailable``
is raised so the caller rebuilds from the catalog. Snapshot names sort by build time.

A backend that keeps its data in a server (Milvus: the snapshot's ``index/`` holds only a
pointer to a collection) moves its own alias just before ``CURRENT`` is swapped, on publish,
rollback and fallback (``index.activate_saved``; a failure there leaves both where they were),
and releases the server's data of a pruned snapshot (``index.release_saved``).

Nothing that decides what is served is trusted unchecked:

* ``manifest.json`` carries a ``seal``, the sha256 of its canonical JSON without the seal, and
  must be byte for byte the layout this module writes: any edit (a valid-JSON one included)
  fails ``verify`` and the snapshot is quarantined like one with a damaged data file. Manifests
  of the previous format (1, unsealed) are readable for ``list``/``current`` (so a rebuild keeps
  the backend and params) but never served: they fail ``verify``, and the caller rebuilds from
  the catalog. The seal detects damage and edits by hand or by tools; it is not a signature
  (whoever can write the file can also recompute it).
* ``CURRENT`` must hold a snapshot name (``SNAPSHOT_NAME``), never a path. A pointer that is
  not one (a path, bytes that are not text, an empty file, a link) is corruption: it is logged,
  and ``load_current`` serves the newest good snapshot and repoints ``CURRENT`` (or raises
  ``Unavailable``). Only folders directly under ``root`` whose names match are ever read,
  quarantined or pruned, so nothing outside ``root`` is touched.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from embedops.errors import Conflict, IntegrityError, InvalidInput, NotFound, Unavailable
from embedops.fsio import (
    atomic_write_bytes,
    atomic_write_json,
    file_lock,
    fsync_dir,
    fsync_tree,
    sha256_tree,
    staged_dir,
)
from embedops.index import activate_saved, load_index, release_saved, segments, verify_cache
from embedops.index.protocol import Index
from embedops.index.segments import INDEX_DIR, KEYS, SEGMENTS_DIR, SegmentedIndex

CURRENT = "CURRENT"
MANIFEST = "manifest.json"
QUARANTINE = "quarantine"
STAGING = ".staging"
LOCK = ".lock"
FORMAT = 2
LEGACY_FORMAT = 1
SEAL = "seal"
SNAPSHOT_NAME = re.compile(r"\A\d{8}T\d{12}Z-[0-9a-f]{6}\Z")
_MAX_POINTER_BYTES = 256

log = logging.getLogger(__name__)


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
    segments: builtins.list[dict[str, Any]] = field(default_factory=list)

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

    index: Index
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
        self, index: Index, keys: builtins.list[str], meta: dict[str, Any]
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
            atomic_write_bytes(tmp / MANIFEST, sealed_manifest_bytes(manifest))
            fsync_tree(tmp)
            activate_saved(tmp / INDEX_DIR, meta["collection"], meta["model_version"])
            os.rename(tmp, self.root / name)
            fsync_dir(self.root)
            self._point_at(name)
            self._prune()
        return self._info(name)

    def publish_segments(
        self, base: str, index: SegmentedIndex, new_keys: dict[str, builtins.list[str]],
        meta: dict[str, Any],
    ) -> SnapshotInfo:
        """Publish a segmented snapshot made from snapshot ``base`` (which must still be
        current, else ``Conflict``): the segments named in ``new_keys`` are written, the others
        hard-linked from ``base`` with the checksums its manifest recorded (see
        :mod:`embedops.index.segments`). ``meta`` as for ``publish``."""
        _check_meta(meta)
        with file_lock(self.root / LOCK), staged_dir(self.root / STAGING, "snapshot") as tmp:
            current = self._current_name()
            if current != base:
                raise Conflict(
                    f"the index in {self.root} changed while it was being refreshed "
                    f"(snapshot {current}, was {base})", "run the refresh or merge again")
            name = self._new_name()
            files = segments.stage(tmp, self.root / base, self._read_manifest(base), index,
                                   new_keys)
            manifest = {**_manifest(name, index, meta, files),
                        "format": segments.SEGMENTED_FORMAT,
                        SEGMENTS_DIR: segments.entries(index)}
            atomic_write_bytes(tmp / MANIFEST, sealed_manifest_bytes(manifest))
            fsync_tree(tmp)
            os.rename(tmp, self.root / name)
            fsync_dir(self.root)
            self._point_at(name)
            self._prune()
        return self._info(name)

    def rollback(self) -> SnapshotInfo:
        """Point ``CURRENT`` at the newest good snapshot older than the current one."""
        with file_lock(self.root / LOCK):
            current = self._current_name()  # a corrupt pointer counts as none: newest good wins
            older = [n for n in self._names() if current is None or n < current]
            for name in reversed(older):
                if not self._check(name):
                    self._activate(name)
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
        one becomes current. A missing or corrupt ``CURRENT`` (while snapshots exist) serves
        the newest good snapshot and repoints ``CURRENT``. ``Unavailable`` when nothing good is
        left (rebuild from the catalog).
        """
        with file_lock(self.root / LOCK):
            current = self._current_name()
            names = self._names()
            if current is None and not names:
                raise Unavailable(
                    f"no index snapshot has been published in {self.root}",
                    "build the index (embedops index build)",
                )
            if current is None:  # no pointer, or a corrupt one (logged): newest good wins
                candidates = list(reversed(names))
            else:
                candidates = [current] + [n for n in reversed(names) if n < current]
            for name in candidates:
                loaded = self._try_load(name)
                if loaded is not None:
                    if name != current:
                        self._activate(name)
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
        """Recompute every checksum and the manifest seal of every snapshot (``all=False``:
        only the current one). A corrupt ``CURRENT`` is reported as a failed check named
        ``CURRENT``."""
        current, problem = self._read_pointer()
        names = self._names() if all else ([current] if current else [])
        checks = [SnapshotCheck(n, not (p := self._check(n)), p) for n in names]
        if problem is None and current is not None and current not in self._names():
            problem = "CURRENT names a snapshot that does not exist"
        if problem is not None:
            hint = "the next load serves the newest good snapshot and repoints it"
            checks.insert(0, SnapshotCheck(CURRENT, False, [f"{problem}; {hint}"]))
        return checks

    def current(self) -> SnapshotInfo | None:
        """The manifest of the current snapshot (its seal checked, its files not), or None when
        there is none or ``CURRENT`` is corrupt (logged). ``IntegrityError`` when the manifest
        is unreadable or fails its seal."""
        name = self._current_name()
        return self._info(name) if name and _is_plain_dir(self.root / name) else None

    # --- internals ------------------------------------------------------------------------
    def _names(self) -> builtins.list[str]:
        """Snapshot folders: only plain folders (no links) whose names ``_new_name`` makes."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if SNAPSHOT_NAME.match(p.name) and _is_plain_dir(p)
        )

    def _new_name(self) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        return f"{stamp}-{secrets.token_hex(3)}"

    def _current_name(self) -> str | None:
        """The snapshot ``CURRENT`` names; None when there is none or it is corrupt (logged)."""
        name, problem = self._read_pointer()
        if problem is not None:
            log.warning("ignoring the index pointer in %s: %s", self.root, problem)
        return name

    def _read_pointer(self) -> tuple[str | None, str | None]:
        """``(name, None)`` for a good pointer, ``(None, None)`` when there is no ``CURRENT``,
        ``(None, problem)`` when it is corrupt. The problem never quotes the file's content."""
        path = self.root / CURRENT
        try:
            if path.is_symlink():
                return None, "CURRENT is a symbolic link, not a file"
            with open(path, "rb") as fh:
                raw = fh.read(_MAX_POINTER_BYTES + 1)
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            return None, f"CURRENT cannot be read ({type(exc).__name__})"
        try:
            name = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            return None, f"CURRENT holds {len(raw)} bytes that are not a snapshot name (not text)"
        if not SNAPSHOT_NAME.match(name):
            return None, f"CURRENT holds {len(raw)} bytes that are not a snapshot name"
        return name, None

    def _point_at(self, name: str) -> None:
        """Replace ``CURRENT`` atomically (a folder in its place is moved to quarantine)."""
        path = self.root / CURRENT
        if _is_plain_dir(path):
            target = self.root / QUARANTINE / f"{CURRENT}.{secrets.token_hex(3)}"
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(path, target)
        atomic_write_bytes(path, (name + "\n").encode())

    def _activate(self, name: str) -> None:
        """Before ``CURRENT`` names snapshot ``name``: a server backend points its own alias at
        it (Milvus; a no-op in process), so a failure there leaves both where they were."""
        info = self._info(name)
        if not (self.root / name / INDEX_DIR).is_dir():  # segmented: in-process only
            return
        activate_saved(self.root / name / INDEX_DIR, info.collection, info.model_version)

    def _prune(self) -> None:
        current = self._current_name()
        names = self._names()
        for name in names[: max(0, len(names) - self.keep)]:
            if name != current:
                if (self.root / name / INDEX_DIR).is_dir():  # segmented: in-process only
                    release_saved(self.root / name / INDEX_DIR)
                shutil.rmtree(self.root / name, ignore_errors=True)

    def _read_manifest(self, name: str, legacy_ok: bool = False) -> dict[str, Any]:
        """The manifest of snapshot ``name``, its seal checked (``IntegrityError`` if not).

        ``legacy_ok`` accepts an unsealed manifest of the previous format (for display and
        rebuild settings only: such a snapshot is never served)."""
        path = self.root / name / MANIFEST
        try:  # an unchanged manifest is not checked again (verify_cache keys it by identity)
            manifest = verify_cache.read_checked(
                path, legacy_ok, lambda data: open_sealed_manifest(data, str(path), legacy_ok))
        except OSError as exc:
            raise IntegrityError(
                f"cannot read {path} ({type(exc).__name__})", _REBUILD_HINT
            ) from exc
        if not isinstance(manifest.get("files"), dict):
            raise IntegrityError(f"{path} lists no files", _REBUILD_HINT)
        return manifest

    def _check(self, name: str) -> builtins.list[str]:
        """Problems found in snapshot ``name`` (empty when every checksum matches)."""
        folder = self.root / name
        if not _is_plain_dir(folder):
            return [f"{name} is not a snapshot folder"]
        try:
            expected = self._read_manifest(name)["files"]
        except IntegrityError as exc:
            return [exc.message]
        actual = sha256_tree(folder, exclude=(MANIFEST,))
        problems = [f"missing file {f}" for f in sorted(set(expected) - set(actual))]
        problems += [f"unexpected file {f}" for f in sorted(set(actual) - set(expected))]
        problems += [
            f"checksum mismatch in {f}"
            for f in sorted(set(expected) & set(actual))
            if expected[f] != actual[f]
        ]
        return problems

    def load(self, name: str) -> LoadedSnapshot:
        """Load the published snapshot ``name`` (segmented or not) after verifying it, without
        serving it; ``NotFound`` when there is none, ``IntegrityError`` when it fails."""
        if not SNAPSHOT_NAME.match(name) or not (self.root / name).is_dir():
            raise NotFound(f"no snapshot '{name}' in {self.root}",
                           "see 'embedops index status' for the published ones")
        problems = self._check(name)
        if problems:
            raise IntegrityError(f"snapshot '{name}' fails verification: {problems[0]}",
                                 "serve or rebuild another snapshot")
        try:
            return self._load(name)
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
            raise IntegrityError(f"snapshot '{name}' cannot be loaded: {type(exc).__name__}",
                                 "serve or rebuild another snapshot") from exc

    def _load(self, name: str) -> LoadedSnapshot:
        folder = self.root / name
        manifest = self._read_manifest(name)
        if SEGMENTS_DIR in manifest:
            index, keys = segments.load_segments(folder, manifest)
            return LoadedSnapshot(index, keys, self._info(name))
        keys = json.loads((folder / KEYS).read_text())
        if not isinstance(keys, builtins.list):
            raise IntegrityError(f"{KEYS} of {name} is not a list")
        return LoadedSnapshot(load_index(folder / INDEX_DIR), keys, self._info(name))

    def _try_load(self, name: str) -> LoadedSnapshot | None:
        problems = self._check(name)
        if not problems:
            try:
                return self._load(name)
            except (IntegrityError, OSError, ValueError, RuntimeError, KeyError,
                    TypeError) as exc:
                problems = [f"cannot load: {type(exc).__name__}: {exc}"]
        self._quarantine(name, problems)
        return None

    def _quarantine(self, name: str, problems: builtins.list[str]) -> None:
        if not SNAPSHOT_NAME.match(name):  # never move anything but a snapshot folder of root
            return
        source = self.root / name
        if not source.exists() and not source.is_symlink():
            return
        log.warning(
            "index snapshot %s in %s failed verification (%d problem(s): %s); moved to %s/",
            name, self.root, len(problems), "; ".join(problems[:3]), QUARANTINE,
        )
        target_dir = self.root / QUARANTINE
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / name
        if target.exists() or target.is_symlink():
            target = target_dir / f"{name}.{secrets.token_hex(3)}"
        os.rename(source, target)  # renames a link itself, never what it points at
        if _is_plain_dir(target):
            atomic_write_json(target / "QUARANTINE-REASON.json", {"problems": problems})
        fsync_dir(self.root)

    def _info(self, name: str) -> SnapshotInfo:
        m = self._read_manifest(name, legacy_ok=True)
        try:
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
                current=name == self._read_pointer()[0],
                segments=[{"name": str(e["name"]), "keys": int(e["keys"]),
                           "tombstones": len(e["tombstones"])} for e in m.get(SEGMENTS_DIR) or []],
            )
        except (TypeError, ValueError, KeyError) as exc:
            raise IntegrityError(
                f"the manifest of snapshot {name} in {self.root} is malformed", _REBUILD_HINT
            ) from exc


_REBUILD_HINT = "rebuild the index from the catalog (embedops index build)"


def _is_plain_dir(path: Path) -> bool:
    """A folder that is not a symbolic link (a link could lead outside the snapshot root)."""
    return path.is_dir() and not path.is_symlink()


def _canonical(obj: Any) -> bytes:
    """The JSON the seal is computed over: sorted keys, no spaces, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _layout(manifest: dict[str, Any]) -> bytes:
    """The exact bytes of a manifest file (indented for people, key-sorted)."""
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()


def _seal_of(body: dict[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(_canonical(body)).hexdigest()


def sealed_manifest_bytes(manifest: dict[str, Any]) -> bytes:
    """``manifest`` with its ``seal`` added, as the exact bytes of the file to write."""
    body = {k: v for k, v in manifest.items() if k != SEAL}
    return _layout({**body, SEAL: _seal_of(body)})


def open_sealed_manifest(data: bytes, where: str, legacy_ok: bool = False) -> dict[str, Any]:
    """Parse a manifest file and check its seal and layout; ``IntegrityError`` when it was
    edited or damaged. ``legacy_ok`` accepts an unsealed manifest of ``LEGACY_FORMAT``."""
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise IntegrityError(f"{where} is not valid JSON", _REBUILD_HINT) from exc
    if not isinstance(manifest, dict):
        raise IntegrityError(f"{where} is not a JSON object", _REBUILD_HINT)
    if SEAL not in manifest:
        if legacy_ok and manifest.get("format") == LEGACY_FORMAT and "name" in manifest:
            return manifest
        raise IntegrityError(
            f"{where} is not sealed (an edited manifest or one of format {LEGACY_FORMAT})",
            _REBUILD_HINT,
        )
    body = {k: v for k, v in manifest.items() if k != SEAL}
    if manifest[SEAL] != _seal_of(body) or data != _layout(manifest):
        raise IntegrityError(
            f"{where} does not match its seal (edited or damaged after it was written)",
            _REBUILD_HINT,
        )
    return manifest


def _check_meta(meta: dict[str, Any]) -> None:
    for required in ("collection", "model_version"):
        if not isinstance(meta.get(required), str) or not meta[required]:
            raise InvalidInput(f"snapshot meta must name '{required}' (a non-empty string)")


def _check_publish(index: Index, keys: list[str], meta: dict[str, Any]) -> None:
    _check_meta(meta)
    ids = index.ids()
    if len(ids) and int(ids.max()) >= len(keys):
        raise InvalidInput(
            f"index id {int(ids.max())} has no key: only {len(keys)} keys given",
            "pass keys so that keys[id] is the item id of every index id",
        )
    if not all(isinstance(k, str) for k in keys):
        raise InvalidInput("snapshot keys must all be strings (item ids)")


def _manifest(
    name: str, index: Index, meta: dict[str, Any], files: dict[str, str]
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
