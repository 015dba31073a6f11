"""Connections to Milvus for the ``milvus`` index backend: where, with what token, and what a
failure means to a caller.

Where: the index's ``uri`` param, else ``$EMBEDOPS_MILVUS_URI``, else milvus-lite in the
workspace (``$EMBEDOPS_HOME/milvus.db``: pymilvus runs it in process, for one process at a
time). A remote Milvus is ``http(s)://host:19530``; its token (``user:password`` or an API key)
comes from ``$EMBEDOPS_MILVUS_TOKEN`` or the file named by ``$EMBEDOPS_MILVUS_TOKEN_FILE`` (a
mounted Secret), never from index params, so it is never written into a snapshot manifest.

Failures: every call goes through ``Connection.call``. Milvus unreachable, timing out or
answering with an error becomes ``Unavailable`` (HTTP 503) that names the server (credentials
removed) and says that service resumes by itself; a dropped collection becomes
``CollectionMissing``. After a connection failure further calls fail fast for
``RETRY_AFTER_S`` (no pile-up of requests waiting on a dead server), then the next call tries
again: gRPC reconnects, and a collection that a restarted Milvus holds released is loaded again
before the call is retried once. pymilvus is imported only here and in ``milvus.py``, inside
functions, so ``embedops --help`` does not pay for it.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from embedops.config import Workspace
from embedops.errors import DependencyMissing, IntegrityError, InvalidInput, Unavailable

URI_ENV = "EMBEDOPS_MILVUS_URI"
TOKEN_ENV = "EMBEDOPS_MILVUS_TOKEN"
TOKEN_FILE_ENV = "EMBEDOPS_MILVUS_TOKEN_FILE"
LITE_FILE = "milvus.db"
RETRY_AFTER_S = 1.0
#: Milvus error codes: collection not found, collection not loaded (released).
NOT_FOUND, NOT_LOADED = 100, 101
_CREDENTIALS = re.compile(r"//[^/@]*@")
_HINT = ("service resumes by itself when Milvus answers again; check the Milvus server and "
         f"${URI_ENV}")

log = logging.getLogger(__name__)
T = TypeVar("T")


class CollectionMissing(IntegrityError):
    """The Milvus collection behind an index is gone (dropped outside embedops)."""


def resolve_uri(uri: str = "") -> str:
    """The Milvus URI to use: ``uri``, else ``$EMBEDOPS_MILVUS_URI``, else milvus-lite in the
    workspace."""
    chosen = uri or os.environ.get(URI_ENV, "")
    if chosen:
        return chosen
    return str(Workspace.from_env().home / LITE_FILE)


def safe_uri(uri: str) -> str:
    """``uri`` without the ``user:password@`` part, for messages and logs."""
    return _CREDENTIALS.sub("//***@", uri)


def check_uri(uri: str) -> str:
    """InvalidInput for a URI that carries credentials (they belong in the token)."""
    if _CREDENTIALS.search(uri):
        raise InvalidInput(
            "the Milvus uri must not carry a user or password (it is stored in snapshot "
            "manifests)", f"put them in ${TOKEN_ENV} or ${TOKEN_FILE_ENV} as user:password")
    return uri


def token() -> str:
    """The Milvus token from ``$EMBEDOPS_MILVUS_TOKEN`` or ``$EMBEDOPS_MILVUS_TOKEN_FILE``."""
    direct = os.environ.get(TOKEN_ENV, "")
    if direct:
        return direct
    path = os.environ.get(TOKEN_FILE_ENV, "")
    if not path:
        return ""
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise Unavailable(f"cannot read the Milvus token file named by ${TOKEN_FILE_ENV} "
                          f"({type(exc).__name__})", "mount the Secret or fix the path") from exc


def _code(exc: BaseException) -> int | None:
    code = getattr(exc, "code", None)
    return code if isinstance(code, int) else None


def _reason(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return " ".join(str(message).split())[:300]


class Connection:
    """One pymilvus client per Milvus server (and token), shared by every index on it."""

    def __init__(self, uri: str, timeout_s: float) -> None:
        self.uri, self.timeout_s = uri, timeout_s
        self._client: Any = None
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._last_error = ""

    @property
    def where(self) -> str:
        """The server, as messages name it."""
        return safe_uri(self.uri)

    def client(self) -> Any:
        """The pymilvus ``MilvusClient`` (made on first use)."""
        with self._lock:
            if self._client is None:
                try:
                    from pymilvus import MilvusClient
                except ImportError as exc:
                    raise DependencyMissing("pymilvus", "the milvus index backend") from exc
                logging.getLogger("pymilvus").setLevel(logging.CRITICAL)  # we report failures
                self._client = MilvusClient(uri=self.uri, token=token(),
                                            timeout=self.timeout_s)
            return self._client

    def call(self, what: str, fn: Callable[[Any], T], collection: str | None = None) -> T:
        """``fn(client)``, with every failure turned into an EmbedopsError (see the module
        docstring); ``collection`` is loaded again and the call retried once when Milvus
        answers that it is released."""
        if time.monotonic() < self._down_until:
            raise self._unavailable(what, self._last_error)
        try:
            client = self.client()
            try:
                return fn(client)
            except Exception as exc:
                if collection is None or _code(exc) != NOT_LOADED:
                    raise
                client.load_collection(collection, timeout=self.timeout_s)
                return fn(client)
        except InvalidInput:
            raise
        except Exception as exc:
            if collection and (_code(exc) == NOT_FOUND
                               or "collection not found" in _reason(exc).lower()):
                raise CollectionMissing(
                    f"the Milvus collection {collection!r} on {self.where} is missing "
                    f"({_reason(exc)})", "rebuild the index from the catalog "
                    "(embedops index build)") from exc
            if isinstance(exc, DependencyMissing | Unavailable):
                raise
            self._last_error = _reason(exc)
            self._down_until = time.monotonic() + RETRY_AFTER_S
            log.warning("Milvus at %s failed %s: %s", self.where, what, self._last_error)
            raise self._unavailable(what, self._last_error) from exc

    def _unavailable(self, what: str, reason: str) -> Unavailable:
        return Unavailable(f"Milvus at {self.where} is unavailable ({what}: {reason})", _HINT)


_connections: dict[tuple[str, str], Connection] = {}
_registry_lock = threading.Lock()


def connection(uri: str, timeout_s: float) -> Connection:
    """The shared Connection to ``uri`` (resolved with ``resolve_uri``)."""
    resolved = resolve_uri(uri)
    key = (resolved, token())
    with _registry_lock:
        found = _connections.get(key)
        if found is None:
            found = _connections[key] = Connection(resolved, timeout_s)
        return found


def forget_connections() -> None:
    """Drop every shared client (tests; after the token changed)."""
    with _registry_lock:
        for conn in _connections.values():
            client = conn._client
            if client is not None:
                try:
                    client.close()
                except Exception:  # noqa: BLE001 - closing a dead client is best effort
                    log.debug("closing a Milvus client failed", exc_info=True)
        _connections.clear()
