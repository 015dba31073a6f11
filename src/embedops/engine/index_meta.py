"""Snapshot summaries as the index manager reports them (status, build answers)."""

from __future__ import annotations

from typing import Any

from embedops.index.snapshot import QUARANTINE, SnapshotStore

DEFAULT_KIND = "flat"


def _info_dict(info: Any) -> dict[str, Any]:
    if info is None:
        return {}
    if isinstance(info, dict):
        return dict(info)
    if hasattr(info, "to_dict"):
        return dict(info.to_dict())
    from dataclasses import asdict, is_dataclass

    if is_dataclass(info) and not isinstance(info, type):
        return asdict(info)
    return dict(vars(info))


def snapshot_meta(info: Any) -> dict[str, Any]:
    """The build metadata stored with a snapshot (the ``meta`` given to ``publish``)."""
    data = _info_dict(info)
    meta = dict(data.get("meta") or {})
    for key in ("name", "path", "collection", "model_version", "built_at", "item_count",
                "backend", "current"):
        if key in data and key not in meta:
            meta[key] = str(data[key]) if key == "path" else data[key]
    if data.get("segments"):  # a segmented snapshot: name, keys and tombstones per segment
        meta["segments"] = data["segments"]
    return meta


def public_meta(info: Any) -> dict[str, Any]:
    """``snapshot_meta`` without the change-tracking bookkeeping (for status and summaries)."""
    return {k: v for k, v in snapshot_meta(info).items() if k != "catalog_seen"}


def kind_params(meta: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """Backend and params a snapshot was built with (``flat`` and None when unknown)."""
    kind, params = meta.get("kind"), meta.get("params")
    if not isinstance(kind, str):
        return DEFAULT_KIND, None
    return kind, dict(params) if isinstance(params, dict) else None


def quarantined(store: SnapshotStore) -> set[str]:
    """Names in the store's quarantine folder (to tell what one load moved there)."""
    try:
        return {p.name for p in (store.root / QUARANTINE).iterdir()}
    except OSError:
        return set()


def load_report(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the last load of an index did, for status (quarantined names sorted)."""
    if report is None:
        return None
    return {**report, "quarantined": sorted(report.get("quarantined") or ())}
