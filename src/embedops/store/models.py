"""Value objects of the store: collections, items coming in, items stored, ingest reports."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from embedops.errors import InvalidInput
from embedops.store.bounds import check_metadata, check_utf8

METRICS = ("cosine", "ip", "l2")
MAX_ID_LEN = 512
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_collection_name(name: str) -> str:
    """Validate a collection name (1-64 letters, digits, ``_.-``, starting alphanumeric)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(
            f"invalid collection name {name!r}",
            "use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
        )
    return name


def check_metric(metric: str) -> str:
    """Validate a similarity metric name."""
    if metric not in METRICS:
        raise InvalidInput(f"unknown metric {metric!r}", f"use one of {', '.join(METRICS)}")
    return metric


@dataclass(frozen=True)
class CollectionInfo:
    """A collection: its active model version (``name@N``), optional rollout candidate, metric,
    the active version's dimension, whether it is encrypted at rest, its live item count, and
    whether PII is redacted from every text written to it (``redact``: e-mail addresses, phone
    numbers, card numbers, IP addresses and URL credentials become typed placeholders before
    the text is stored or embedded)."""

    name: str
    model_version: str
    candidate_version: str | None
    metric: str
    dim: int
    encrypted: bool
    created_at: float
    item_count: int = 0
    redact: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; ``CollectionInfo(**d)`` rebuilds it."""
        return asdict(self)


@dataclass(frozen=True)
class ItemIn:
    """An item to store: a caller-chosen id, its text and JSON-serializable metadata.

    Metadata is bounded (depth, keys, sizes, JSON types only: see ``embedops.store.bounds``),
    so no stored item can break the serialisation of a search that returns it."""

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id or len(self.id) > MAX_ID_LEN:
            raise InvalidInput(
                f"item id must be a non-empty string of at most {MAX_ID_LEN} characters, "
                f"got {ascii(str(self.id)[:40])}",
            )
        check_utf8(self.id, "an item id")
        if not isinstance(self.text, str) or not self.text.strip():
            raise InvalidInput(f"item {self.id!r} has no text", "every item needs non-empty text")
        check_utf8(self.text, f"the text of item {ascii(self.id[:40])}")
        if not isinstance(self.metadata, dict):
            raise InvalidInput(
                f"metadata of item {self.id!r} must be an object, "
                f"got {type(self.metadata).__name__}"
            )
        check_metadata(self.metadata, self.id)

    def content_bytes(self) -> bytes:
        """What the content hash covers: the text and the canonical metadata JSON."""
        return self.text.encode() + b"\x00" + canonical_metadata(self.metadata, self.id).encode()


def canonical_metadata(metadata: dict[str, Any], item_id: str = "?") -> str:
    """Metadata as canonical JSON (sorted keys, no spaces); refuses values JSON cannot hold."""
    try:
        return json.dumps(metadata, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"metadata of item {item_id!r} is not JSON-serializable: {exc}",
            "use strings, numbers, booleans, null, lists and objects (no NaN)",
        ) from exc


def content_hash(data: bytes, mac_key: bytes | None = None) -> str:
    """sha256 of ``data``, or HMAC-SHA256 under ``mac_key`` for encrypted collections."""
    if mac_key is None:
        return hashlib.sha256(data).hexdigest()
    return hmac.new(mac_key, data, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Item:
    """A stored item. ``updated_at`` is the deletion time when ``deleted``."""

    id: str
    text: str
    metadata: dict[str, Any]
    content_sha256: str
    created_at: float
    updated_at: float
    deleted: bool = False


@dataclass
class IngestReport:
    """What one ingest did. ``failed_lines`` holds ``(line, message)`` for lines skipped."""

    read: int = 0
    embedded: int = 0
    unchanged: int = 0
    failed_lines: list[tuple[int, str]] = field(default_factory=list)
    seconds: float = 0.0
    duplicates: int = 0
    deleted: int = 0
    run_id: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self, max_failed: int = 100) -> dict[str, Any]:
        """JSON-ready dict: the first ``max_failed`` failed lines as ``[line, message]`` pairs,
        and ``failed_count``, the number of all of them."""
        out = asdict(self)
        out["failed_lines"] = [list(pair) for pair in self.failed_lines[:max_failed]]
        out["failed_count"] = len(self.failed_lines)
        out["seconds"] = round(self.seconds, 3) if math.isfinite(self.seconds) else None
        return out
