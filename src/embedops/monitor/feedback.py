"""User feedback on search results, and what it is mined into.

Every search answer carries a ``query_id``; a client reports what the user did with it: a
``click`` on a hit, a ``dwell`` (seconds spent on it), ``thumbs`` (+1 / -1) or a ``grade``
(0-3). Events are rows of ``monitor.db``'s ``feedback`` table, idempotent per ``event_id``
(a retried report is counted once). The query text is stored only when the collection allows
it (``Feedback.allow_queries``; default off), redacted by the PII pipeline first and sealed
with the collection's key when the collection is encrypted.

``mine`` turns the events into golden-set candidates (queries with a confidently relevant
item, for human review before they join a gating set) and fine-tuning pairs with hard
negatives (hits shown above the positive and not chosen), JSONL that ``embedops finetune``
reads, de-duplicated, with minimum-evidence thresholds and a held-out split.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embedops.errors import InvalidInput
from embedops.fsio import atomic_write_bytes, atomic_write_json
from embedops.monitor.db import MonitorDB

if TYPE_CHECKING:
    from embedops.engine import Embedops

KINDS = ("click", "dwell", "thumbs", "grade")
DWELL_POSITIVE_S = 30.0
_CONTEXT = "feedback-query"


@dataclass(frozen=True)
class FeedbackEvent:
    """One thing a user did with the answer ``query_id``. ``item_id`` names the hit (all kinds
    need one); ``value``: dwell seconds, thumbs +1/-1, grade 0..3 (a click needs none);
    ``shown``: the hit ids as displayed, best first (they give the hard negatives); ``query``:
    the query text (kept only where the collection allows it)."""

    event_id: str
    query_id: str
    kind: str
    item_id: str
    value: float | None = None
    shown: tuple[str, ...] = ()
    query: str | None = None
    model_version: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "shown", tuple(self.shown))
        for name in ("event_id", "query_id", "item_id"):
            text = getattr(self, name)
            if not isinstance(text, str) or not 1 <= len(text) <= 256:
                raise InvalidInput(f"feedback {name} must be 1-256 characters")
        if self.kind not in KINDS:
            raise InvalidInput(f"unknown feedback kind {self.kind!r}",
                               f"use one of {', '.join(KINDS)}")
        ok = {"click": self.value is None or self.value in (0, 1),
              "dwell": self.value is not None and 0 <= self.value <= 86_400,
              "thumbs": self.value in (-1, 1),
              "grade": self.value is not None and 0 <= self.value <= 3}[self.kind]
        if not ok:
            raise InvalidInput(f"bad value {self.value!r} for a {self.kind} event",
                               "dwell: seconds; thumbs: 1 or -1; grade: 0 to 3; click: none")
        if len(self.shown) > 1000 or self.query is not None and len(self.query) > 10_000:
            raise InvalidInput("feedback shown lists at most 1000 ids, a query 10000 characters")

    @property
    def positive(self) -> bool:
        """True when the event says the item was relevant."""
        value = 1.0 if self.value is None else float(self.value)
        return {"click": value > 0, "dwell": value >= DWELL_POSITIVE_S, "thumbs": value > 0,
                "grade": value >= 2}[self.kind]


@dataclass(frozen=True)
class Mined:
    """What ``mine`` found: golden candidates, training and held-out pairs, and counts."""

    candidates: list[dict[str, Any]] = field(default_factory=list)
    train: list[dict[str, str]] = field(default_factory=list)
    heldout: list[dict[str, str]] = field(default_factory=list)
    skipped_no_query: int = 0

    def counts(self) -> dict[str, int]:
        return {"candidates": len(self.candidates), "train": len(self.train),
                "heldout": len(self.heldout), "skipped_no_query": self.skipped_no_query}


class Feedback:
    """Feedback of one workspace: record events, figures per model version, mining."""

    def __init__(self, api: Embedops, db: MonitorDB) -> None:
        self.api, self.db = api, db

    def _settings_path(self, collection: str) -> Any:
        return self.api.workspace.collection_dir(collection) / "feedback.json"

    def allow_queries(self, collection: str, allow: bool) -> None:
        """Store (or stop storing) query texts with ``collection``'s feedback."""
        self.api.collections.info(collection)
        atomic_write_json(self._settings_path(collection), {"store_queries": bool(allow)})

    def stores_queries(self, collection: str) -> bool:
        """True when ``collection`` allows storing query texts (default False)."""
        path = self._settings_path(collection)
        return path.exists() and bool(json.loads(path.read_text()).get("store_queries"))

    def record(self, collection: str, events: list[FeedbackEvent]) -> dict[str, int]:
        """Store ``events`` in one transaction; an event id seen before is not counted again.
        Returns ``{"received", "written", "duplicates"}``."""
        self.api.collections.info(collection)
        keep = self.stores_queries(collection)
        rows = [(e.event_id, collection, e.query_id, e.model_version, e.kind, e.item_id,
                 e.value, json.dumps(list(e.shown)),
                 self._query(collection, e.query) if keep and e.query else None, time.time())
                for e in events]
        with self.db.transaction() as conn:
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO feedback (event_id, collection, query_id, model_version, "
                "kind, item_id, value, shown, query, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                rows)
            written = conn.total_changes - before
        return {"received": len(events), "written": written, "duplicates": len(events) - written}

    def _query(self, collection: str, text: str) -> str | bytes:
        from embedops.text.redact import redact

        clean = redact(text).text
        sealed = self.api.seal(collection, clean.encode(), _CONTEXT)
        return clean if sealed is None else sealed

    def _open(self, collection: str, stored: str | bytes | None) -> str | None:
        if stored is None or isinstance(stored, str):
            return stored
        return self.api.unseal(collection, stored, _CONTEXT).decode()

    def figures(self, collection: str | None = None) -> list[dict[str, Any]]:
        """Per collection and model version: events, answers with feedback, clicks, and the
        click-through rate (answers with a click / answers with any feedback)."""
        return figures(self.db, collection)

    def mine(self, collection: str, min_evidence: int = 2, holdout: float = 0.2,
             max_negatives: int = 3) -> Mined:
        """Golden candidates (query → items with at least ``min_evidence`` positive events and
        no negative majority) and pairs ``{"anchor", "positive", "negative"}``: one per
        (query, positive, hard negative), the negative a hit shown above the positive that no
        event marked relevant. A query lands wholly in train or held-out (``holdout`` share,
        by a hash of its text, so reruns split the same way)."""
        if not 0.0 <= holdout < 1.0 or min_evidence < 1:
            raise InvalidInput("holdout must lie in [0, 1) and min_evidence be at least 1")
        votes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        shown: dict[str, list[str]] = {}
        skipped = 0
        for kind, item, value, shown_json, stored in self.db.connection().execute(
                "SELECT kind, item_id, value, shown, query FROM feedback WHERE collection = ? "
                "ORDER BY id", (collection,)):
            query = self._open(collection, stored)
            if not query:
                skipped += 1
                continue
            key = " ".join(query.lower().split())
            event = FeedbackEvent("x", "x", kind, item, value)
            votes[key][item] += 1 if event.positive else -1
            shown.setdefault(key, json.loads(shown_json) or [])
        candidates: list[dict[str, Any]] = []
        train: list[dict[str, str]] = []
        heldout: list[dict[str, str]] = []
        for query, per_item in sorted(votes.items()):
            relevant = [i for i, n in per_item.items() if n >= min_evidence]
            if not relevant:
                continue
            candidates.append({"query": query, "relevant": {i: 1.0 for i in sorted(relevant)},
                               "evidence": {i: per_item[i] for i in sorted(relevant)}})
            pairs = self._pairs(collection, query, relevant, shown[query], per_item,
                                max_negatives)
            (heldout if _bucket(query) < holdout else train).extend(pairs)
        return Mined(candidates, train, heldout, skipped)

    def _pairs(self, collection: str, query: str, relevant: list[str], shown: list[str],
               votes: dict[str, int], max_negatives: int) -> list[dict[str, str]]:
        texts = {i.id: i.text for i in self.api.get_items(collection, [*relevant, *shown])}
        out = []
        for item in relevant:
            if item not in texts:
                continue
            above = shown[:shown.index(item)] if item in shown else []
            negatives: list[str | None] = [
                n for n in above if votes.get(n, 0) <= 0 and n in texts]
            for negative in negatives[:max_negatives] or [None]:
                pair = {"anchor": query, "positive": texts[item]}
                if negative is not None:
                    pair["negative"] = texts[negative]
                out.append(pair)
        return out


def figures(db: MonitorDB, collection: str | None = None) -> list[dict[str, Any]]:
    """``Feedback.figures`` from the database alone (the metrics collector has no engine)."""
    where, args = ("WHERE collection = ?", (collection,)) if collection else ("", ())
    rows = db.connection().execute(
        "SELECT collection, COALESCE(model_version, ''), COUNT(*), COUNT(DISTINCT query_id), "
        "COUNT(DISTINCT CASE WHEN kind = 'click' THEN query_id END) FROM feedback "
        f"{where} GROUP BY 1, 2 ORDER BY 1, 2", args).fetchall()
    return [{"collection": c, "model_version": v or None, "events": n, "queries": q,
             "clicked_queries": k, "ctr": round(k / q, 6) if q else 0.0}
            for c, v, n, q, k in rows]


def event_counts(db: MonitorDB) -> list[tuple[str, str, str, int]]:
    """``(collection, model_version or "", kind, events)`` for every combination seen."""
    rows = db.connection().execute(
        "SELECT collection, COALESCE(model_version, ''), kind, COUNT(*) FROM feedback "
        "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3").fetchall()
    return [(str(c), str(v), str(k), int(n)) for c, v, k, n in rows]


def write_mined(mined: Mined, out_dir: Path) -> dict[str, str]:
    """Write ``mined`` under ``out_dir``: ``golden_candidates.jsonl`` (one ``{"query",
    "relevant", "evidence"}`` a line, for review; ``embedops golden import`` reads it as is),
    ``pairs_train.jsonl`` and ``pairs_heldout.jsonl`` (``embedops finetune`` reads them).
    Returns the paths written, by kind."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"candidates": out_dir / "golden_candidates.jsonl",
             "train": out_dir / "pairs_train.jsonl",
             "heldout": out_dir / "pairs_heldout.jsonl"}
    rows: dict[str, list[dict[str, Any]]] = {"candidates": mined.candidates,
                                             "train": list(mined.train),
                                             "heldout": list(mined.heldout)}
    for kind, path in paths.items():
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows[kind])
        atomic_write_bytes(path, text.encode("utf-8"))
    return {kind: str(path) for kind, path in paths.items()}


def _bucket(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0x1_0000_0000


def to_dicts(events: list[FeedbackEvent]) -> list[dict[str, Any]]:
    """Events as JSON-ready dicts."""
    return [asdict(e) for e in events]
