"""The client's namespaces: ``collections`` (as ``Embedops.collections``), ``golden`` and
``rollout`` (the HTTP routes of the monitoring and lifecycle loop), and item bodies."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any
from urllib.parse import quote

from embedops.client.transport import Transport
from embedops.errors import AlreadyExists, InvalidInput
from embedops.store.models import CollectionInfo, Item

_INFO_FIELDS = tuple(f.name for f in fields(CollectionInfo))
_ITEM_FIELDS = ("id", "text", "metadata")
# Ids per ``GET .../items`` request: the route's limit, and a bound on the encoded query string
# (the server refuses request lines of about 16 KiB).
IDS_PER_GET = 1000
ID_CHARS_PER_GET = 8000


def api_path(*parts: str) -> str:
    """``/v1/...`` with every part percent-encoded (a name never escapes its segment)."""
    return "/v1/" + "/".join(quote(p, safe="") for p in parts)


def _info(data: Mapping[str, Any]) -> CollectionInfo:
    """A CollectionInfo from a collection body (extra fields, as in ``show``, are dropped)."""
    return CollectionInfo(**{key: data[key] for key in _INFO_FIELDS if key in data})


def item(data: Mapping[str, Any]) -> Item:
    """An Item from an item body of ``GET /v1/collections/{c}/items``."""
    return Item(id=str(data["id"]), text=str(data["text"]), metadata=dict(data["metadata"]),
                content_sha256=str(data["content_sha256"]),
                created_at=float(data["created_at"]), updated_at=float(data["updated_at"]))


def id_chunks(ids: Sequence[str]) -> list[list[str]]:
    """``ids`` in consecutive chunks that each fit one ``GET .../items`` request."""
    chunks: list[list[str]] = []
    size = 0
    for item_id in ids:
        cost = len(quote(item_id, safe="")) + 5  # "&ids="
        if not chunks or len(chunks[-1]) >= IDS_PER_GET or size + cost > ID_CHARS_PER_GET:
            chunks.append([])
            size = 0
        chunks[-1].append(item_id)
        size += cost
    return chunks


def items_body(items: Sequence[Any]) -> list[dict[str, Any]]:
    """Items as the API's ``{"id", "text", "metadata"}`` objects: ItemIn (or anything with those
    attributes) or dicts, whose other top-level fields become metadata (as ``upsert_items``)."""
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Sequence):
        raise InvalidInput("items must be a list of {id, text, metadata} objects")
    out = []
    for pos, item in enumerate(items):
        if not isinstance(item, Mapping):
            if not all(hasattr(item, name) for name in _ITEM_FIELDS):
                raise InvalidInput(f"item at position {pos} is not an object with id, text "
                                   "and metadata", 'write {"id": "1", "text": "...", '
                                   '"metadata": {}}')
            item = {name: getattr(item, name) for name in _ITEM_FIELDS}
        extra = {k: v for k, v in item.items() if k not in _ITEM_FIELDS}
        metadata = item.get("metadata") or {}
        if extra and isinstance(metadata, Mapping):
            metadata = {**extra, **metadata}
        out.append({"id": item.get("id"), "text": item.get("text"), "metadata": metadata})
    return out


class RemoteCollections:
    """``client.collections``: create, list, show, delete (as ``Embedops.collections``)."""

    def __init__(self, http: Transport) -> None:
        self._http = http

    def create(self, name: str, model: str, metric: str = "cosine") -> CollectionInfo:
        """Create collection ``name`` embedded with ``model`` (admin key)."""
        body = self._http.request("POST", "/v1/collections",
                                  json={"name": name, "model": model, "metric": metric})
        return _info(body["collection"])

    def get_or_create(self, name: str, model: str, metric: str = "cosine") -> CollectionInfo:
        """The collection ``name``, created with these settings when it does not exist."""
        try:
            return self.create(name, model, metric)
        except AlreadyExists:
            return self.info(name)

    def info(self, name: str) -> CollectionInfo:
        """Settings and live item count of ``name`` (CollectionNotFound when there is none)."""
        return _info(self.show(name))

    def list(self) -> builtins.list[CollectionInfo]:
        """Every collection, by name."""
        body = self._http.request("GET", "/v1/collections")
        return [_info(row) for row in body["collections"]]

    def show(self, name: str) -> dict[str, Any]:
        """Counts, vectors per version, last ingest runs and index status of ``name``."""
        return dict(self._http.request("GET", api_path("collections", name))["collection"])

    def delete(self, name: str) -> CollectionInfo:
        """Delete collection ``name`` with its items, vectors and indexes (admin key); returns
        its CollectionInfo as it was just before."""
        info = self.info(name)
        self._http.request("DELETE", api_path("collections", name))
        return info


class Golden:
    """``client.golden``: golden query sets and their evaluation runs."""

    def __init__(self, http: Transport) -> None:
        self._http = http

    def list(self) -> builtins.list[dict[str, Any]]:
        """Every golden set with its query count and scheduled collection."""
        return builtins.list(self._http.request("GET", "/v1/golden")["sets"])

    def create(self, name: str, collection: str | None = None,
               description: str = "") -> dict[str, Any]:
        """Create an empty set (AlreadyExists if the name is taken; write key)."""
        body = {"name": name, "collection": collection, "description": description}
        return dict(self._http.request("POST", "/v1/golden", json=body))

    def add(self, name: str, queries: Sequence[Mapping[str, Any]]) -> int:
        """Append ``{"query", "relevant": [ids] or {id: grade}}`` queries; returns the set's
        query count."""
        body = {"queries": [dict(q) for q in queries]}
        return int(self._http.request("POST", api_path("golden", name, "queries"),
                                      json=body)["n_queries"])

    def run(self, name: str, collection: str, k: Sequence[int] = (10,), mode: str = "dense",
            model_version: str | None = None) -> dict[str, Any]:
        """Evaluate the set on ``collection`` now; returns the stored run."""
        params: dict[str, Any] = {"collection": collection, "k": builtins.list(k), "mode": mode}
        if model_version is not None:
            params["model_version"] = model_version
        return dict(self._http.request("POST", api_path("golden", name, "run"), params=params))

    def history(self, name: str, collection: str | None = None,
                limit: int = 50) -> builtins.list[dict[str, Any]]:
        """Runs of the set, newest first."""
        params: dict[str, Any] = {"limit": limit}
        if collection is not None:
            params["collection"] = collection
        body = self._http.request("GET", api_path("golden", name, "runs"), params=params)
        return builtins.list(body["runs"])


class Rollouts:
    """``client.rollout``: model rollouts of a collection (admin key), as ``embedops rollout``.
    Each step returns the rollout's state."""

    def __init__(self, http: Transport) -> None:
        self._http = http

    def _step(self, collection: str, step: str | None, body: Any = None,
              method: str = "POST") -> dict[str, Any]:
        parts = ("collections", collection, "rollout") + ((step,) if step else ())
        return dict(self._http.request(method, api_path(*parts), json=body)["rollout"])

    def start(self, collection: str, model: str, mode: str = "canary", share: float = 0.1,
              rate: float | None = None, index_kind: str | None = None,
              gates: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Make ``model`` the candidate and backfill it in the server (resumes when called
        again while backfilling)."""
        body = {"model": model, "mode": mode, "share": share, "rate": rate,
                "index_kind": index_kind, "gates": None if gates is None else dict(gates)}
        return self._step(collection, None, body)

    def status(self, collection: str) -> dict[str, Any]:
        """Phase, backfill progress, per-version figures and each gate's verdict."""
        return self._step(collection, None, method="GET")

    def promote(self, collection: str, force: bool = False) -> dict[str, Any]:
        """Switch to the candidate once its gates hold (``force`` skips them, audited)."""
        return self._step(collection, "promote", {"force": force})

    def rollback(self, collection: str, reason: str | None = None) -> dict[str, Any]:
        """Serve the previous version again."""
        return self._step(collection, "rollback", {"reason": reason})

    def abort(self, collection: str, reason: str | None = None) -> dict[str, Any]:
        """Stop a rollout before promotion."""
        return self._step(collection, "abort", {"reason": reason})

    def finish(self, collection: str) -> dict[str, Any]:
        """Stop writing the previous version (no rollback after this)."""
        return self._step(collection, "finish")
