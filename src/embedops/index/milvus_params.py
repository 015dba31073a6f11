"""Settings of the ``milvus`` index backend, the alias that names a served index, and the two
snapshot hooks (``activate``: move the alias; ``release``: drop a pruned snapshot's collection),
which need only a saved ``index.json``, never a loaded index."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from embedops.errors import IntegrityError, InvalidInput
from embedops.index.milvus_client import check_uri, connection

INDEX_TYPES = ("HNSW", "FLAT")
_NAME = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]{0,63}\Z")


@dataclass(frozen=True)
class MilvusParams:
    """``index_type`` HNSW or FLAT (exact); HNSW's ``M``, ``ef_construction`` and default
    ``ef_search``; ``uri`` of the Milvus server (``""``: ``$EMBEDOPS_MILVUS_URI``, else
    milvus-lite in the workspace); ``prefix`` of collection and alias names (one per workspace
    sharing a Milvus); ``timeout_s`` per call; ``sample`` vectors verified on build and load."""

    index_type: str = "HNSW"
    M: int = 16
    ef_construction: int = 128
    ef_search: int = 64
    uri: str = ""
    prefix: str = "embedops"
    timeout_s: float = 30.0
    sample: int = 64

    def __post_init__(self) -> None:
        if self.index_type not in INDEX_TYPES:
            raise InvalidInput(f"milvus index_type must be one of {', '.join(INDEX_TYPES)}, "
                               f"got {self.index_type!r}")
        for name in ("M", "ef_construction", "ef_search", "sample"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4096:
                raise InvalidInput(f"milvus {name} must be an integer in 1..4096, got {value!r}")
        if not isinstance(self.prefix, str) or not _NAME.match(self.prefix):
            raise InvalidInput(f"milvus prefix must be a letter or _ then up to 63 letters, "
                               f"digits or _, got {self.prefix!r}")
        if not isinstance(self.uri, str):
            raise InvalidInput(f"milvus uri must be a string, got {self.uri!r}")
        check_uri(self.uri)
        if not isinstance(self.timeout_s, int | float) or not 0 < float(self.timeout_s) <= 3600:
            raise InvalidInput(f"milvus timeout_s must be in (0, 3600], got {self.timeout_s!r}")


def alias_name(prefix: str, collection: str, model_version: str) -> str:
    """The Milvus alias that names the served index of one embedops collection and version."""
    def clean(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9_]", "_", text)[:60]

    digest = hashlib.sha256(f"{collection}\0{model_version}".encode()).hexdigest()[:8]
    return f"{prefix}__{clean(collection)}__{clean(model_version)}_{digest}"


def saved(meta: Mapping[str, Any]) -> tuple[MilvusParams, str]:
    """The params and collection recorded in a saved index's ``index.json``."""
    try:
        params = MilvusParams(**dict(meta.get("params") or {}))
        return params, str(meta["state"]["collection"])
    except (KeyError, TypeError, InvalidInput) as exc:
        raise IntegrityError("index.json of a Milvus index does not name its collection",
                             "rebuild the index from the catalog") from exc


def activate(meta: Mapping[str, Any], collection: str, model_version: str) -> None:
    """Point the alias of ``collection``/``model_version`` at the collection of the saved
    index ``meta`` describes: one atomic ``alter_alias`` (``create_alias`` the first time)."""
    params, target = saved(meta)
    alias = alias_name(params.prefix, collection, model_version)

    def switch(client: Any) -> None:
        if alias in client.list_aliases(timeout=params.timeout_s).get("aliases", []):
            client.alter_alias(target, alias, timeout=params.timeout_s)
        else:
            client.create_alias(target, alias, timeout=params.timeout_s)

    connection(params.uri, params.timeout_s).call(f"alias {alias} -> {target}", switch, target)


def release(meta: Mapping[str, Any]) -> None:
    """Drop the collection of the saved index ``meta`` describes, unless an alias names it."""
    params, target = saved(meta)

    def drop(client: Any) -> None:
        info = client.describe_collection(target, timeout=params.timeout_s)
        if not info.get("aliases"):
            client.drop_collection(target, timeout=params.timeout_s)

    connection(params.uri, params.timeout_s).call(f"drop {target}", drop, target)
