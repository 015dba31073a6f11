"""``Client``: the HTTP API of ``embedops serve`` with the engine's method names and types.

    from embedops.client import Client
    eo = Client("http://127.0.0.1:8000", api_key="eok_...")   # was: Embedops(home=...)
    eo.collections.create("docs", model="minilm")
    eo.upsert_items("docs", [{"id": "1", "text": "a red fox", "metadata": {"lang": "en"}}])
    eo.search("docs", "fox", k=5, mode="hybrid", filters={"lang": "en"})

Where ``Embedops`` and ``Client`` share a method, they share its name, arguments, return type
and error classes, so code moves between in-process and remote by changing the constructor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from embedops.client.remote import (
    Golden,
    RemoteCollections,
    Rollouts,
    api_path,
    id_chunks,
    item,
    items_body,
)
from embedops.client.transport import RetryPolicy, Transport
from embedops.errors import InvalidInput
from embedops.search.models import DEFAULT_HYBRID_WEIGHT, SearchResponse
from embedops.store.models import CollectionInfo, Item

# Ids per ``POST .../items/where`` page (the route's largest ``limit``).
WHERE_PAGE = 10_000


def _pairs(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, float]]:
    return [(str(r["word"]), float(r["score"])) for r in rows]


class Client:
    """A typed client of one embedops server (thread-safe; close it, or use ``with``).

    ``api_key`` defaults to ``$EMBEDOPS_API_KEY``. ``timeout`` bounds each request (seconds);
    429 and 503 answers are retried up to ``retries`` times, after the server's
    ``Retry-After`` (at most ``max_retry_wait`` seconds, else the error is raised)."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None,
                 timeout: float = 30.0, retries: int = 3, max_retry_wait: float = 30.0) -> None:
        policy = RetryPolicy(retries=retries, max_wait=max_retry_wait)
        self._http = Transport(base_url, api_key, timeout, policy)
        self.collections = RemoteCollections(self._http)
        self.golden = Golden(self._http)
        self.rollout = Rollouts(self._http)

    @property
    def base_url(self) -> str:
        """The server this client talks to."""
        return self._http.base_url

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- items ---------------------------------------------------------------------------------
    def upsert_items(self, collection: str, items: Sequence[Any]) -> dict[str, int]:
        """Add or replace items (ItemIn or ``{"id", "text", "metadata"}`` dicts; other top-level
        fields become metadata). Returns ``{"received", "written", "unchanged"}``."""
        body = self._http.request("POST", api_path("collections", collection, "items"),
                                  json={"items": items_body(items)})
        return {key: int(body[key]) for key in ("received", "written", "unchanged")}

    def delete_items(self, collection: str, ids: Sequence[str]) -> int:
        """Delete items by id; returns how many were deleted."""
        if isinstance(ids, str):
            raise InvalidInput("ids must be a list of strings")
        body = self._http.request("POST", api_path("collections", collection, "items", "delete"),
                                  json={"ids": list(ids)})
        return int(body["deleted"])

    def get_items(self, collection: str, ids: Sequence[str]) -> list[Item]:
        """The live items with these ids, in the order asked (unknown or deleted ids are left
        out), as ``Embedops.get_items``; any number of ids (sent in several requests)."""
        wanted = [] if isinstance(ids, str) else list(ids)
        if isinstance(ids, str) or not all(isinstance(i, str) for i in wanted):
            raise InvalidInput("ids must be a list of strings", 'pass ["id1", ...]')
        if not wanted:
            self.collections.info(collection)  # an unknown collection is an error here too
            return []
        found: dict[str, Item] = {}
        for chunk in id_chunks(list(dict.fromkeys(wanted))):
            body = self._http.request("GET", api_path("collections", collection, "items"),
                                      params={"ids": chunk})
            found.update((row["id"], item(row)) for row in body["items"])
        return [found[i] for i in wanted if i in found]

    def ids_where(self, collection: str, filters: Mapping[str, Any] | None = None) -> list[str]:
        """Ids of the live items whose metadata pass ``filters`` (None or ``{}``: every live
        item), in insertion order, as ``Embedops.ids_where``; read a page at a time."""
        body: dict[str, Any] = {"filters": dict(filters or {}), "limit": WHERE_PAGE}
        path = api_path("collections", collection, "items", "where")
        ids: list[str] = []
        while True:
            page = self._http.request("POST", path, json={**body, "offset": len(ids)})
            ids.extend(str(i) for i in page["ids"])
            if not page["ids"] or len(ids) >= int(page["total"]):
                return ids

    def count(self, collection: str) -> int:
        """How many live items ``collection`` holds."""
        return self.collections.info(collection).item_count

    def collection_info(self, collection: str) -> CollectionInfo:
        """CollectionInfo of ``collection``."""
        return self.collections.info(collection)

    # -- search --------------------------------------------------------------------------------
    def search(
        self,
        collection: str,
        query: str | None = None,
        k: int = 10,
        mode: str = "dense",
        filters: Mapping[str, Any] | None = None,
        model_version: str | None = None,
        hybrid_weight: float = DEFAULT_HYBRID_WEIGHT,
        vector: Any = None,
        search_params: Mapping[str, Any] | None = None,
    ) -> SearchResponse:
        """Search ``collection`` (see ``Embedops.search``: the same modes, filters, ``k``,
        pinned ``model_version``, query ``vector`` and per-query ``search_params``)."""
        body: dict[str, Any] = {"k": k, "mode": mode, "hybrid_weight": hybrid_weight}
        optional = {"query": query, "filters": None if filters is None else dict(filters),
                    "model_version": model_version,
                    "search_params": None if search_params is None else dict(search_params),
                    "vector": None if vector is None else
                    np.asarray(vector, dtype=np.float64).ravel().tolist()}
        body.update({key: value for key, value in optional.items() if value is not None})
        answer = self._http.request("POST", api_path("collections", collection, "search"),
                                    json=body)
        return SearchResponse.from_dict(answer)

    # -- models --------------------------------------------------------------------------------
    def embed(self, texts: Sequence[str], model: str | None = None) -> np.ndarray:
        """float32 ``(len(texts), dim)`` embeddings of ``texts`` under ``model`` (default: the
        server's only model)."""
        if isinstance(texts, str):
            raise InvalidInput("texts must be a list of strings", 'pass ["text", ...]')
        body: dict[str, Any] = {"texts": list(texts)}
        if model is not None:
            body["model"] = model
        answer = self._http.request("POST", "/v1/embed", json=body)
        return np.asarray(answer["vectors"], dtype=np.float32).reshape(len(texts), -1)

    def neighbours(self, model: str | None, word: str, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` nearest words of ``word`` in a static model, best first."""
        answer = self._http.request("POST", "/v1/words/neighbours",
                                    json=_words({"word": word, "k": k}, model))
        return _pairs(answer["neighbours"])

    def similarity(self, model: str | None, a: str, b: str) -> float:
        """Cosine similarity of two words in a static model."""
        answer = self._http.request("POST", "/v1/words/similarity",
                                    json=_words({"a": a, "b": b}, model))
        return float(answer["similarity"])

    def analogy(self, model: str | None, a: str, b: str, c: str, k: int = 1,
                method: str = "3cosadd") -> list[tuple[str, float]]:
        """``a : b :: c : ?`` in a static model (inputs excluded), best first. The HTTP API
        answers with 3CosAdd only."""
        if method != "3cosadd":
            raise InvalidInput(f"analogy method {method!r} is not served over HTTP",
                               "use method='3cosadd', or the in-process Embedops")
        answer = self._http.request("POST", "/v1/words/analogy",
                                    json=_words({"a": a, "b": b, "c": c, "k": k}, model))
        return _pairs(answer["results"])

    # -- indexes -------------------------------------------------------------------------------
    def build_index(self, collection: str, kind: str = "flat",
                    params: dict[str, Any] | None = None,
                    model_version: str | None = None) -> dict[str, Any]:
        """Build an index (flat, hnsw, ivf, ivfpq, sq8), publish and serve it (admin key).
        Returns the snapshot summary."""
        body: dict[str, Any] = {"kind": kind, "params": params, "model_version": model_version}
        return dict(self._http.request("POST", api_path("collections", collection, "index"),
                                       json=body))

    def index_status(self, collection: str) -> dict[str, Any]:
        """Current snapshot, item count and freshness of the collection's active index."""
        return dict(self._http.request("GET", api_path("collections", collection, "index")))

    def verify_index(self, collection: str) -> Any:
        """Verify the checksums of the collection's snapshots (write key)."""
        return self._http.request("POST", api_path("collections", collection, "index", "verify"))

    def rollback_index(self, collection: str) -> dict[str, Any]:
        """Serve the previous snapshot of the collection's index again (admin key)."""
        return dict(self._http.request("POST",
                                       api_path("collections", collection, "index", "rollback")))

    # -- monitoring ----------------------------------------------------------------------------
    def drift(self, collection: str, reference: Mapping[str, Any], current: Mapping[str, Any],
              time_field: str = "updated_at",
              thresholds: Mapping[str, float] | None = None) -> dict[str, Any]:
        """Drift of ``current`` against ``reference``: each side ``{"since", "until"}`` (epoch
        seconds) or ``{"texts": [...]}``. Stored on the server; returns the report."""
        body = {"reference": dict(reference), "current": dict(current),
                "time_field": time_field,
                "thresholds": None if thresholds is None else dict(thresholds)}
        return dict(self._http.request("POST", api_path("collections", collection, "drift"),
                                       json=body))


def _words(body: dict[str, Any], model: str | None) -> dict[str, Any]:
    return {**body, "model": model} if model is not None else body
