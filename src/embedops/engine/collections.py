"""``Embedops.collections``: create, list, show, delete and re-key collections."""

from __future__ import annotations

import builtins
import os
import shutil
from collections.abc import Callable
from typing import Any

from embedops.config import Workspace
from embedops.engine.models import ModelHub
from embedops.errors import AlreadyExists
from embedops.store.catalog import Catalog
from embedops.store.models import CollectionInfo


class Collections:
    """The collections of one workspace (see ``Embedops``)."""

    def __init__(self, workspace: Workspace, catalog: Catalog, hub: ModelHub,
                 status: Callable[[str], dict[str, Any]], forget: Callable[[str], None]) -> None:
        self._workspace, self._catalog, self._hub = workspace, catalog, hub
        self._status, self._forget = status, forget

    def create(self, name: str, model: str, metric: str = "cosine",
               encrypted: bool | None = None, redact: bool = False) -> CollectionInfo:
        """Create collection ``name`` embedded with ``model`` (``name``/``name@N``); the
        dimension comes from the model's manifest. ``encrypted=None`` follows the workspace
        setting (``set_default_encryption``); ``redact`` replaces PII (e-mail, phone, card,
        IP, URL credentials) in every text written to it, at upsert and ingest alike."""
        mv = self._hub.resolve(model)
        return self._catalog.create_collection(name, model_version=mv.ref, metric=metric,
                                               dim=mv.dim, encrypted=encrypted, redact=redact)

    def get_or_create(self, name: str, model: str, metric: str = "cosine",
                      encrypted: bool | None = None, redact: bool = False) -> CollectionInfo:
        """The collection ``name``, created with these settings when it does not exist."""
        try:
            return self.create(name, model, metric, encrypted, redact)
        except AlreadyExists:
            return self._catalog.get_collection(name)

    def info(self, name: str) -> CollectionInfo:
        """Settings and live item count of ``name`` (NotFound when there is none)."""
        return self._catalog.get_collection(name)

    def list(self) -> builtins.list[CollectionInfo]:
        """Every collection, by name."""
        return list(self._catalog.list_collections())

    def show(self, name: str) -> dict[str, Any]:
        """Counts, vectors per version, last ingest runs and index status of ``name``."""
        return {**self._catalog.stats(name), "index": self._status(name)}

    def stats(self, name: str) -> dict[str, Any]:
        """Counts, vectors per version and last ingest runs of ``name`` (no index status)."""
        return dict(self._catalog.stats(name))

    def delete(self, name: str) -> CollectionInfo:
        """Delete collection ``name``, its items, vectors and index snapshots."""
        info = self._catalog.delete_collection(name)
        self._forget(name)
        folder = self._workspace.collection_dir(name)
        if folder.exists():
            # Renamed away first, so a half-removed folder is never taken for an index.
            trash = self._workspace.staging_dir / f"deleted-index.{name}.{os.getpid()}"
            os.rename(folder, trash)
            shutil.rmtree(trash, ignore_errors=True)
        return info

    def rekey(self, name: str, new_key: bytes) -> CollectionInfo:
        """Re-encrypt collection ``name`` under ``new_key`` (the current key must open it)."""
        return self._catalog.rekey(name, new_key)

    def set_default_encryption(self, on: bool) -> None:
        """Encrypt every new collection of this workspace (unless created ``encrypted=False``)."""
        self._catalog.set_encrypt_by_default(on)

    def default_encryption(self) -> bool:
        """Whether new collections are encrypted by default."""
        return bool(self._catalog.encrypt_by_default())
