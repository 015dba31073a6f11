"""Where monitoring vectors come from: probe/text files, a sample of a collection's texts, or
a time window of a collection's stored vectors (by item ``created_at``/``updated_at``)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from embedops.engine import Embedops
from embedops.errors import InvalidInput

MAX_PROBE = 10_000
TIME_FIELDS = ("updated_at", "created_at")
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def read_texts(path: Path, limit: int = MAX_PROBE) -> list[str]:
    """Texts of a ``.jsonl`` file (field ``text``, else ``query``) or a plain file (one per
    non-empty line); at most ``limit``. A bad JSON line is refused with its number."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from exc
    texts: list[str] = []
    jsonl = Path(path).suffix.lower() == ".jsonl"
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if jsonl:
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"{path}, line {number}: not valid JSON ({exc.msg})") from exc
            text = row.get("text", row.get("query")) if isinstance(row, dict) else None
            if not isinstance(text, str) or not text.strip():
                raise InvalidInput(f"{path}, line {number}: no non-empty 'text' field")
            texts.append(text)
        else:
            texts.append(line.strip())
        if len(texts) >= limit:
            break
    if len(texts) < 2:
        raise InvalidInput(f"{path} holds {len(texts)} text(s); at least 2 are needed")
    return texts


def sample_texts(api: Embedops, collection: str, n: int, seed: int = 0) -> list[str]:
    """``n`` texts of ``collection`` drawn at random (all of them when it holds fewer)."""
    if n < 2:
        raise InvalidInput(f"--sample must be at least 2, got {n}")
    ids = api.item_ids(collection)
    if len(ids) < 2:
        raise InvalidInput(f"collection '{collection}' holds {len(ids)} item(s); at least 2 "
                           "are needed", "ingest items first, or pass --probe FILE")
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(ids), min(n, len(ids), MAX_PROBE), replace=False))
    return [it.text for it in api.get_items(collection, [ids[i] for i in chosen])]


def parse_time(value: str | float | None, now: float | None = None) -> float | None:
    """Seconds since the epoch from an ISO 8601 time (UTC unless it says otherwise), a number
    of seconds since the epoch, or an age such as ``30m``, ``12h``, ``7d``, ``2w`` (ago)."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    match = _RELATIVE.match(text)
    if match:
        return (now if now is not None else time.time()) - float(match[1]) * _UNIT_S[match[2]]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(f"cannot read the time {value!r}",
                           "write 2026-11-20, 2026-11-20T08:00:00+00:00, epoch seconds, or an "
                           "age like 7d / 12h") from exc
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def window_ids(api: Embedops, collection: str, since: float | None, until: float | None,
               field: str = "updated_at") -> list[str]:
    """Ids of live items whose ``field`` (``updated_at`` or ``created_at``) is in
    ``[since, until)``."""
    if field not in TIME_FIELDS:
        raise InvalidInput(f"unknown time field {field!r}", f"use one of {', '.join(TIME_FIELDS)}")
    low, high = since if since is not None else -np.inf, until if until is not None else np.inf
    return [it.id for it in api.iter_items(collection)
            if low <= getattr(it, field) < high]


def window_vectors(api: Embedops, collection: str, version: str, since: float | None,
                   until: float | None, field: str = "updated_at",
                   name: str = "window") -> np.ndarray:
    """Stored ``version`` vectors of the items in a time window (at least 2 are needed)."""
    ids = window_ids(api, collection, since, until, field)
    _, vectors = api.load_vectors(collection, version, ids) if ids else ([], None)
    if vectors is None or len(vectors) < 2:
        raise InvalidInput(
            f"the {name} window of '{collection}' holds {len(ids)} item(s) with {version} "
            "vectors; at least 2 are needed", "widen the window (--*-since / --*-until)")
    return np.asarray(vectors, dtype=np.float32)


def parse_rows(value: str) -> tuple[int | None, int | None]:
    """``(start, stop)`` of a row range written ``START:STOP`` (either side may be left out:
    ``:500``, ``500:``), 0-based and half-open over the collection's items in insertion order;
    negative numbers count from the end, as in Python (``-200:``, the last 200 items)."""
    start, sep, stop = value.partition(":")
    try:
        if not sep:
            raise ValueError(value)
        return (int(start) if start.strip() else None, int(stop) if stop.strip() else None)
    except ValueError as exc:
        raise InvalidInput(f"cannot read the row range {value!r}",
                           "write START:STOP, e.g. 0:500, 500: or -200: (insertion order)"
                           ) from exc


def read_ids(path: Path) -> list[str]:
    """Item ids of a file: one per line, or ``.jsonl`` objects with an ``id`` field."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}", "write one item id per line") from exc
    ids: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if Path(path).suffix.lower() == ".jsonl":
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"{path}, line {number}: not valid JSON ({exc.msg})") from exc
            if not isinstance(row, dict) or "id" not in row:
                raise InvalidInput(f"{path}, line {number}: no 'id' field")
            ids.append(str(row["id"]))
        else:
            ids.append(line.strip())
    return ids


def row_ids(api: Embedops, collection: str, start: int | None, stop: int | None) -> list[str]:
    """Ids of the live items ``start:stop`` of ``collection`` in insertion order."""
    return api.item_ids(collection)[start:stop]


def ids_vectors(api: Embedops, collection: str, version: str, ids: Sequence[str],
                name: str, what: str) -> np.ndarray:
    """Stored ``version`` vectors of the items ``ids`` (at least 2 must have one)."""
    found, vectors = api.load_vectors(collection, version, list(ids)) if ids else ([], None)
    if vectors is None or len(found) < 2:
        total = len(api.item_ids(collection))
        raise InvalidInput(
            f"the {name} side ({what}) of '{collection}' holds {len(found)} item(s) with "
            f"{version} vectors; at least 2 are needed (the collection has {total} items)",
            f"pick other rows or ids for --{name}-rows / --{name}-ids")
    return np.asarray(vectors, dtype=np.float32)


def embed_texts(api: Embedops, version: str, texts: Sequence[str],
                batch: int = 512) -> tuple[np.ndarray, float | None]:
    """Vectors of ``texts`` under ``version`` and their out-of-vocabulary token rate (None for
    models that have no vocabulary to miss, such as subword transformers)."""
    encoder = api.models.encoder(version)
    inner = getattr(encoder, "inner", encoder)
    if hasattr(inner, "encode_with_info"):
        infos = [inner.encode_with_info(list(texts[i:i + batch]))
                 for i in range(0, len(texts), batch)]
        if all(hasattr(info, "n_oov") for info in infos):
            tokens = sum(int(info.n_tokens.sum()) for info in infos)
            oov = sum(int(info.n_oov.sum()) for info in infos)
            vectors = np.concatenate([np.asarray(info.vectors, np.float32) for info in infos])
            return vectors, (oov / tokens if tokens else 0.0)
    chunks = [api.models.embed(list(texts[i:i + batch]), version)
              for i in range(0, len(texts), batch)]
    return np.concatenate(chunks), None
