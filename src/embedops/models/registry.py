"""The model registry: immutable, checksummed ModelVersions under ``models/<name>/<version>/``.

A version is written to a staging folder, checksummed, fsynced and renamed into place under a
lock, so a killed ``train`` or ``import`` never leaves a partial version. Versions only increase
(a deleted version number is not reused). Arrays are safetensors; no pickle anywhere.

The manifest itself is sealed: its ``seal`` is the sha256 of its canonical JSON without the
seal, and the file must be byte for byte the layout the registry writes. Every load checks it
(a few KB, so it is cheap), so an edited tokenizer spec, dim or file checksum raises
``IntegrityError`` instead of being used silently. ``record_eval``, the one legitimate rewrite,
checks the seal before and re-seals after. The seal detects damage and edits by hand or by
tools; it is not a signature (whoever can write the file can also recompute it).

Decision on manifests written before sealing (no ``seal`` key): they are accepted as
*legacy-unsealed*, with a warning logged once per version, because a model cannot be rebuilt
from anything else (unlike an index snapshot, which is rebuilt from the catalog) and refusing
them would break every existing workspace. ``Registry.seal(ref)`` (or any ``record_eval``)
seals one after its files verify. Removing the seal therefore makes an edit undetectable, as
recomputing it would: the seal guards against accidents and careless edits, not an attacker
with write access to the models folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from embedops import __version__
from embedops.config import Workspace
from embedops.errors import IntegrityError, InvalidInput, ModelNotFound
from embedops.fsio import (
    atomic_write_bytes,
    atomic_write_json,
    fsync_dir,
    fsync_tree,
    sha256_tree,
    staged_dir,
)
from embedops.fsio import file_lock as _lock

MANIFEST = "manifest.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_COUNTER = ".last_version"
SEAL = "seal"

log = logging.getLogger(__name__)
_warned_unsealed: set[str] = set()


def check_name(name: str) -> str:
    """Validate a model name (letters, digits, ``_.-``, at most 64 characters)."""
    if not _NAME.match(name):
        raise InvalidInput(
            f"invalid model name '{name}'",
            "use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
        )
    return name


def parse_ref(ref: str) -> tuple[str, int | None]:
    """Split ``name``, ``name@3`` or ``name@latest`` into (name, version or None for latest)."""
    name, _, version = ref.partition("@")
    check_name(name)
    if version in ("", "latest"):
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise InvalidInput(f"invalid model version in '{ref}'", "write name@N with N >= 1")
    return name, int(version)


@dataclass(frozen=True)
class ModelVersion:
    """One published, immutable model version and its manifest."""

    name: str
    version: int
    path: Path
    manifest: dict[str, Any] = field(repr=False)

    @property
    def ref(self) -> str:
        """``name@version``, the string every stored vector records."""
        return f"{self.name}@{self.version}"

    @property
    def kind(self) -> str:
        return str(self.manifest["kind"])

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.manifest.get("params", {}))

    @property
    def tokenizer_fingerprint(self) -> str:
        return str(self.manifest.get("tokenizer_fingerprint", ""))

    @property
    def parent(self) -> str | None:
        return self.manifest.get("parent")

    def file(self, rel: str) -> Path:
        """Path of one of this version's files (must be listed in the manifest)."""
        if rel not in self.manifest.get("files", {}):
            raise IntegrityError(f"{self.ref} has no file '{rel}' in its manifest")
        return self.path / rel

    def verify(self) -> None:
        """Check every file against the sha256 in the manifest; raise IntegrityError if not."""
        expected: dict[str, str] = self.manifest.get("files", {})
        actual = sha256_tree(self.path, exclude=(MANIFEST,))
        missing = sorted(set(expected) - set(actual))
        changed = sorted(k for k in expected if k in actual and actual[k] != expected[k])
        if missing or changed:
            raise IntegrityError(
                f"model {self.ref} failed verification: missing {missing}, changed {changed}",
                f"delete it with 'embedops models delete {self.ref}' and train or import again",
            )


@dataclass
class Draft:
    """A model version being written. Put files under ``path``; fill ``manifest``."""

    name: str
    path: Path
    manifest: dict[str, Any]
    published: ModelVersion | None = None


class Registry:
    """Publishes, lists, loads and deletes ModelVersions in a workspace."""

    def __init__(self, workspace: Workspace | None = None) -> None:
        self.workspace = (workspace or Workspace.from_env()).ensure()
        self.root = self.workspace.models_dir

    # -- writing ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def draft(self, name: str, kind: str, **manifest: Any) -> Iterator[Draft]:
        """Stage a new version of ``name``; publish it atomically when the block succeeds.

        The block writes files into ``draft.path`` and sets at least ``dim`` in
        ``draft.manifest``. On error (or SIGKILL) nothing is published.
        """
        check_name(name)
        self._clean_dead_staging()
        with staged_dir(self.workspace.staging_dir, f"model.{name}.{os.getpid()}") as tmp:
            draft = Draft(name=name, path=tmp, manifest={"kind": kind, **manifest})
            started = time.time()
            yield draft
            draft.published = self._publish(draft, started)

    def _publish(self, draft: Draft, started: float) -> ModelVersion:
        if "dim" not in draft.manifest:
            raise InvalidInput("a model manifest needs 'dim'")
        files = sha256_tree(draft.path, exclude=(MANIFEST,))
        manifest = {
            "name": draft.name,
            "params": {},
            "parent": None,
            "eval": {},
            "tokenizer": None,
            "tokenizer_fingerprint": None,
            **draft.manifest,
            "files": files,
            "embedops_version": __version__,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "build_seconds": round(time.time() - started, 3),
        }
        model_dir = self.root / draft.name
        model_dir.mkdir(parents=True, exist_ok=True)
        with _lock(model_dir / ".lock"):
            version = self._next_version(model_dir)
            manifest["version"] = version
            manifest = _sealed(manifest)
            atomic_write_bytes(draft.path / MANIFEST, _layout(manifest))
            fsync_tree(draft.path)
            final = model_dir / str(version)
            os.rename(draft.path, final)
            fsync_dir(model_dir)
            atomic_write_json(model_dir / _COUNTER, {"last": version})
        return ModelVersion(draft.name, version, final, manifest)

    def _next_version(self, model_dir: Path) -> int:
        last = max(self._versions(model_dir), default=0)
        counter = model_dir / _COUNTER
        if counter.exists():
            last = max(last, int(json.loads(counter.read_text())["last"]))
        return last + 1

    def _clean_dead_staging(self) -> None:
        """Remove staging folders left by processes that no longer exist."""
        for path in self.workspace.staging_dir.glob("model.*"):
            parts = path.name.split(".")
            pid = int(parts[2]) if len(parts) > 3 and parts[2].isdigit() else None
            if pid is not None and not _alive(pid):
                shutil.rmtree(path, ignore_errors=True)

    def record_eval(self, ref: str, suite: str, result: dict[str, Any]) -> ModelVersion:
        """Store evaluation ``result`` under ``eval[suite]`` in the manifest (atomic rewrite).

        Evaluation scores are annotations: they do not change the checksummed files. The
        manifest's seal is checked before and renewed after (a legacy unsealed one is sealed).
        """
        mv = self.get(ref)
        with _lock(self.root / mv.name / ".lock"):
            manifest = _read_manifest(mv.path, mv.ref)
            manifest.setdefault("eval", {})[suite] = result
            manifest = _sealed(manifest)
            atomic_write_bytes(mv.path / MANIFEST, _layout(manifest))
        return ModelVersion(mv.name, mv.version, mv.path, manifest)

    def seal(self, ref: str) -> ModelVersion:
        """Seal the manifest of a legacy (unsealed) version after its files verify; a sealed
        one is left as it is. Check the manifest by eye first: sealing makes it trusted."""
        mv = self.get(ref, verify=True)
        if SEAL in mv.manifest:
            return mv
        with _lock(self.root / mv.name / ".lock"):
            manifest = _sealed(_read_manifest(mv.path, mv.ref))
            atomic_write_bytes(mv.path / MANIFEST, _layout(manifest))
        return ModelVersion(mv.name, mv.version, mv.path, manifest)

    # -- reading ---------------------------------------------------------------------------
    @staticmethod
    def _versions(model_dir: Path) -> list[int]:
        if not model_dir.is_dir():
            return []
        return sorted(int(p.name) for p in model_dir.iterdir() if p.name.isdigit())

    def names(self) -> list[str]:
        """Names of models with at least one version."""
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and self._versions(p))

    def list(self, name: str | None = None) -> list[ModelVersion]:
        """All versions (of ``name``, or of every model), oldest first."""
        names = [check_name(name)] if name else self.names()
        return [self._load(n, v) for n in names for v in self._versions(self.root / n)]

    def get(self, ref: str, verify: bool = False) -> ModelVersion:
        """Resolve ``name``, ``name@N`` or ``name@latest``; optionally verify checksums."""
        name, version = parse_ref(ref)
        versions = self._versions(self.root / name)
        if not versions:
            known = ", ".join(self.names()) or "none"
            raise ModelNotFound(
                f"no model named '{name}' (known models: {known})",
                "train one with 'embedops train' or import one with 'embedops import'",
            )
        if version is None:
            version = versions[-1]
        elif version not in versions:
            raise ModelNotFound(
                f"model '{name}' has no version {version} (versions: {versions})",
                f"use one of {', '.join(f'{name}@{v}' for v in versions)}",
            )
        mv = self._load(name, version)
        if verify:
            mv.verify()
        return mv

    def _load(self, name: str, version: int) -> ModelVersion:
        path = self.root / name / str(version)
        return ModelVersion(name, version, path, _read_manifest(path, f"{name}@{version}"))

    def delete(self, ref: str) -> ModelVersion:
        """Delete one version (``name@N`` required: deleting 'latest' by accident is refused)."""
        name, version = parse_ref(ref)
        if version is None:
            raise InvalidInput(
                f"'{ref}' does not name a version", f"write {name}@N; see 'embedops models list'"
            )
        mv = self.get(ref)
        with _lock(self.root / name / ".lock"):
            trash = self.workspace.staging_dir / f"deleted.{name}.{version}.{os.getpid()}"
            os.rename(mv.path, trash)
            fsync_dir(self.root / name)
            shutil.rmtree(trash, ignore_errors=True)
        return mv


def _layout(manifest: dict[str, Any]) -> bytes:
    """The exact bytes of a manifest file (indented, key-sorted: as ``atomic_write_json``)."""
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()


def _seal_of(body: dict[str, Any]) -> str:
    """sha256 of the canonical JSON (sorted keys, no spaces, UTF-8) of a manifest body."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _sealed(manifest: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` with a fresh ``seal`` over everything else."""
    body = {k: v for k, v in manifest.items() if k != SEAL}
    return {**body, SEAL: _seal_of(body)}


def _read_manifest(path: Path, ref: str) -> dict[str, Any]:
    """The manifest of the version in ``path``, its seal and layout checked.

    ``IntegrityError`` (naming ``ref`` and what to do) when it is unreadable, edited or
    damaged; a legacy unsealed manifest is accepted with a warning (see the module doc)."""
    hint = (f"restore {ref} from a backup, or delete it with 'embedops models delete {ref}' "
            "and train or import it again")
    try:
        data = (path / MANIFEST).read_bytes()
        manifest = json.loads(data)
    except (OSError, ValueError) as exc:
        raise IntegrityError(
            f"model {ref} has an unreadable manifest ({type(exc).__name__})", hint
        ) from exc
    if not isinstance(manifest, dict):
        raise IntegrityError(f"model {ref} has a manifest that is not a JSON object", hint)
    if SEAL not in manifest:
        if str(path) not in _warned_unsealed:
            _warned_unsealed.add(str(path))
            log.warning("model %s has a legacy unsealed manifest: edits to it cannot be "
                        "detected; seal it with Registry.seal after checking it", ref)
        return manifest
    if manifest != _sealed(manifest) or data != _layout(manifest):
        raise IntegrityError(
            f"model {ref} has a manifest.json that does not match its seal "
            "(edited or damaged after it was published)",
            hint,
        )
    return manifest


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

