"""Workspace layout and settings.

The embedded default needs nothing but a folder: ``$EMBEDOPS_HOME`` (default ``./embedops-data``)
holds ``catalog.db``, ``models/<name>/<version>/`` and
``indexes/<collection>/<model-version>/<snapshot>/``.
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

    def ensure(self) -> Workspace:
        """Create the workspace folders if missing; return self."""
        for path in (self.home, self.models_dir, self.indexes_dir, self.staging_dir):
            path.mkdir(parents=True, exist_ok=True)
        return self
