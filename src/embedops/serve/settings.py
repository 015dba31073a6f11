"""Settings of the HTTP service: one frozen dataclass that round-trips ``ServeSettings(**json)``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from embedops.errors import InvalidInput

_LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class ServeSettings:
    """Where to listen, whether to require API keys, and the request limits.

    ``home`` is the workspace folder (None: ``$EMBEDOPS_HOME`` or ``./embedops-data``).
    ``auth`` is on unless turned off explicitly (``--no-auth``). ``max_*`` bound one request;
    a request over a bound is answered 413 with a message that names the limit.
    ``cache_size`` is the number of query embeddings kept (0 turns the cache off).
    ``workers`` > 1 runs that many server processes on one port (each loads the indexes and
    keeps its own cache and metrics: a scrape sees the worker that answered it).
    ``inline_search`` answers every search on the event loop instead of the thread pool (faster
    on a busy machine; a slow search then holds the others). ``inline_cheap_search`` (on by
    default) does so only for searches known to be cheap and bounded (see
    ``routes_search.cheap``): a plain dense kNN of a cached query or a given vector.
    ``warmup`` loads every collection's index and runs one query per collection at start-up,
    so that ``/readyz`` is only green once no request would be cold.
    ``rate_limit_read``/``_write``/``_admin`` limit each API key of that role, in the notation
    of the ``limits`` library (``"20/second"``, ``"10/second;300/minute"``); None (the
    default) is no limit. A key over its limit is answered 429 with ``Retry-After`` (see
    ``serve.ratelimit``).
    ``public_metrics`` serves ``/metrics`` without a key (it names collections and counts
    items, so by default it needs a key of role read, like the rest of the API).
    ``header_timeout_s`` and ``body_timeout_s`` bound how long a client may take to send a
    request's headers and then its body; one that is slower is cut off (``serve.timeouts``).
    """

    home: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    auth: bool = True
    max_batch: int = 256
    max_text_chars: int = 8192
    max_body_bytes: int = 4 * 1024 * 1024
    max_k: int = 1000
    cache_size: int = 10_000
    log_level: str = "info"
    log_text: bool = False
    warmup: bool = True
    graceful_timeout_s: float = 10.0
    workers: int = 1
    inline_search: bool = False
    inline_cheap_search: bool = True
    rate_limit_read: str | None = None
    rate_limit_write: str | None = None
    rate_limit_admin: str | None = None
    public_metrics: bool = False
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_text_chars", "max_body_bytes", "max_k"):
            if int(getattr(self, name)) < 1:
                raise InvalidInput(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.workers < 1:
            raise InvalidInput(f"workers must be >= 1, got {self.workers}")
        if self.cache_size < 0:
            raise InvalidInput(f"cache_size must be >= 0, got {self.cache_size}")
        if not 0 <= self.port <= 65535:
            raise InvalidInput(f"port must be in 0..65535, got {self.port}")
        if self.log_level not in _LOG_LEVELS:
            raise InvalidInput(
                f"unknown log level '{self.log_level}'", f"use one of {', '.join(_LOG_LEVELS)}"
            )
        if self.graceful_timeout_s < 0:
            raise InvalidInput(f"graceful_timeout_s must be >= 0, got {self.graceful_timeout_s}")
        for name in ("header_timeout_s", "body_timeout_s"):
            if not float(getattr(self, name)) > 0:
                raise InvalidInput(f"{name} must be > 0, got {getattr(self, name)}")
        self._check_rate_limits()

    def _check_rate_limits(self) -> None:
        for role in ("read", "write", "admin"):
            text = getattr(self, f"rate_limit_{role}")
            if text is not None:
                from embedops.serve.ratelimit import parse_limit

                parse_limit(text, f"rate_limit_{role}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict; ``ServeSettings(**s.to_dict()) == s``."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> ServeSettings:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)
