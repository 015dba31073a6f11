"""What every route handler shares: settings, the Python API, keys, cache and metrics."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from embedops.config import Workspace
from embedops.serve.cache import EmbeddingCache
from embedops.serve.encoders import install_query_cache
from embedops.serve.keys import KeyStore
from embedops.serve.settings import ServeSettings

if TYPE_CHECKING:
    from embedops.engine import Embedops


@dataclass
class ServiceContext:
    """One per app. ``api`` is the engine (``embedops.engine.Embedops``), built on first use."""

    settings: ServeSettings
    workspace: Workspace
    keys: KeyStore | None
    cache: EmbeddingCache
    metrics: Any = None
    ready: bool = False
    warmup: dict[str, Any] = field(default_factory=dict)
    backends: dict[tuple[str, str], str] = field(default_factory=dict)
    _api: Embedops | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def build(cls, settings: ServeSettings, api: Embedops | None = None) -> ServiceContext:
        """The context of ``settings``; pass ``api`` to serve an already-built facade."""
        ws = Workspace.from_env(settings.home).ensure()
        return cls(
            settings=settings,
            workspace=ws,
            keys=KeyStore(ws) if settings.auth else None,
            cache=EmbeddingCache(settings.cache_size),
            _api=api,
        )

    def attach(self, metrics: Any) -> None:
        """Set the metrics; a facade passed in at build time gets the query cache now."""
        self.metrics = metrics
        if self._api is not None:
            install_query_cache(self._api, self.cache, metrics)

    @property
    def api(self) -> Embedops:
        """The facade every route calls (the same one the CLI calls)."""
        if self._api is None:
            with self._lock:
                if self._api is None:
                    from embedops.engine import Embedops

                    api = Embedops(self.workspace)
                    install_query_cache(api, self.cache, self.metrics)
                    self._api = api
        return self._api
