"""Workspace layout and settings: every path of a workspace is defined here, once.

The embedded default needs nothing but a folder: ``$EMBEDOPS_HOME`` (default ``./embedops-data``)::

    catalog.db                     collections, items, vectors per model version, lineage
    models/<name>/<version>/       immutable model versions (manifest + safetensors)
    indexes/<collection>/          two-stage settings of the collection
        <model-version>/<snapshot>/    checksummed index snapshots, CURRENT pointer
    monitor.db                     golden sets, runs, drift history
    keys.db                        API keys (scrypt hashes) of the HTTP service
    audit.jsonl                    admin actions, one JSON line each
    rollouts/                      rollout state per collection
    postprocess/                   fitted post-processing (PCA) per model version
    usecases/<kind>/<name>/<n>/    use-case artefacts (classifiers, maps): manifest + safetensors
    .staging/                      artifacts being written (renamed into place when complete)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "EMBEDOPS_HOME"
DEFAULT_HOME = "embedops-data"


@dataclass(frozen=True)
class Workspace:
    """Paths of one embedops workspace. Folders are created on first use by ``ensure()``."""

    home: Path

    @classmethod
    def from_env(cls, home: str | os.PathLike[str] | None = None) -> Workspace:
        """The workspace named by ``home``, else ``$EMBEDOPS_HOME``, else ``./embedops-data``."""
        chosen = home if home is not None else os.environ.get(HOME_ENV, DEFAULT_HOME)
        return cls(Path(chosen).expanduser().resolve())

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def indexes_dir(self) -> Path:
        return self.home / "indexes"

    @property
    def catalog_path(self) -> Path:
        return self.home / "catalog.db"

    @property
    def staging_dir(self) -> Path:
        """Where artifacts are written before being renamed into place (same filesystem)."""
        return self.home / ".staging"

    @property
    def monitor_db_path(self) -> Path:
        """Golden sets, evaluation runs and drift history."""
        return self.home / "monitor.db"

    @property
    def keys_db_path(self) -> Path:
        """API keys of the HTTP service."""
        return self.home / "keys.db"

    @property
    def audit_path(self) -> Path:
        """The audit trail (JSON lines)."""
        return self.home / "audit.jsonl"

    @property
    def rollouts_dir(self) -> Path:
        """Rollout state files, one per collection."""
        return self.home / "rollouts"

    @property
    def postprocess_dir(self) -> Path:
        """Fitted post-processing steps, per model version."""
        return self.home / "postprocess"

    @property
    def usecases_dir(self) -> Path:
        """Artefacts of the use cases (classifiers, maps), versioned per name."""
        return self.home / "usecases"

    def collection_dir(self, collection: str) -> Path:
        """The index folder of ``collection`` (its two-stage settings and one snapshot folder
        per model version)."""
        return self.indexes_dir / collection

    def snapshot_root(self, collection: str, model_version: str) -> Path:
        """The snapshot folder of one collection and model version (``@`` becomes ``_``)."""
        return self.collection_dir(collection) / model_version.replace("@", "_")

    def ensure(self) -> Workspace:
        """Create the workspace folders if missing; return self."""
        for path in (self.home, self.models_dir, self.indexes_dir, self.staging_dir):
            path.mkdir(parents=True, exist_ok=True)
        return self
