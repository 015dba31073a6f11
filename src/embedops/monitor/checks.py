"""The monitoring checks the CLI and the HTTP service both run: drift of a collection, and a
comparison of two model versions (with golden-set deltas)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from embedops.engine import Embedops
from embedops.errors import InvalidInput
from embedops.monitor.compare import AlignmentMap, Comparison, compare_versions
from embedops.monitor.db import MonitorDB
from embedops.monitor.drift import DriftConfig, DriftReport, detect_drift
from embedops.monitor.probe import embed_texts, ids_vectors, row_ids, window_vectors


@dataclass(frozen=True)
class Window:
    """A time window of a collection's items: ``[since, until)`` in epoch seconds on
    ``field`` (``updated_at`` or ``created_at``); None is open."""

    since: float | None = None
    until: float | None = None
    field: str = "updated_at"


@dataclass(frozen=True)
class Rows:
    """Items ``start:stop`` of a collection in insertion order (0-based, half-open; None is
    open, negative counts from the end): drift on a freshly ingested collection, where every
    item has the same timestamp."""

    start: int | None = None
    stop: int | None = None


@dataclass(frozen=True)
class Ids:
    """An explicit set of item ids of a collection."""

    ids: tuple[str, ...]


Side = Window | Rows | Ids | Sequence[str]


@dataclass(frozen=True)
class DriftResult:
    """A drift report with the vectors it was computed on (for the HTML plots)."""

    report: DriftReport
    model_version: str
    reference: np.ndarray
    current: np.ndarray


def collection_drift(
    api: Embedops,
    collection: str,
    reference: Side,
    current: Side,
    config: DriftConfig | None = None,
    model_version: str | None = None,
    db: MonitorDB | None = None,
) -> DriftResult:
    """Drift of ``current`` against ``reference`` in ``collection``: each side is a time
    window of stored vectors, a row range or id set of stored vectors, or a list of texts
    embedded with the collection's model. The report is stored in ``db`` when given (its
    gauges are then exported at /metrics)."""
    version = api.index_version(collection, model_version)
    ref_v, ref_oov = _side(api, collection, version, reference, "reference")
    cur_v, cur_oov = _side(api, collection, version, current, "current")
    report = detect_drift(ref_v, cur_v, config, ref_oov, cur_oov)
    if db is not None:
        db.record_drift(collection, version, report.to_dict())
    return DriftResult(report, version, ref_v, cur_v)


def _side(api: Embedops, collection: str, version: str, side: Side,
          name: str) -> tuple[np.ndarray, float | None]:
    if isinstance(side, Window):
        return window_vectors(api, collection, version, side.since, side.until, side.field,
                              name), None
    if isinstance(side, Rows):
        ids = row_ids(api, collection, side.start, side.stop)
        what = f"rows {'' if side.start is None else side.start}:" \
               f"{'' if side.stop is None else side.stop}"
        return ids_vectors(api, collection, version, ids, name, what), None
    if isinstance(side, Ids):
        return ids_vectors(api, collection, version, side.ids, name,
                           f"{len(side.ids)} ids"), None
    if isinstance(side, str) or len(side) < 2:
        raise InvalidInput(f"the {name} side needs at least 2 texts")
    return embed_texts(api, version, list(side))


@dataclass(frozen=True)
class VersionComparison:
    """A comparison of two versions on probe texts, plus golden-set recall of each."""

    comparison: Comparison
    alignment: AlignmentMap
    golden: dict[str, dict[str, float]] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {**self.comparison.to_dict()}
        if self.golden is not None:
            out["golden"] = self.golden
        return out


def compare_models(api: Embedops, a: str, b: str, texts: Sequence[str], k: int = 10,
                   golden: tuple[MonitorDB, str, str] | None = None) -> VersionComparison:
    """Compare model versions ``a`` and ``b`` on ``texts``; with ``golden`` = (db, set,
    collection), also exact-search recall@k of the set under each version and the delta."""
    ref_a, ref_b = api.models.resolve(a).ref, api.models.resolve(b).ref
    if ref_a == ref_b:
        raise InvalidInput(f"both sides are {ref_a}", "compare two different versions")
    va, _ = embed_texts(api, ref_a, texts)
    vb, _ = embed_texts(api, ref_b, texts)
    comparison, alignment = compare_versions(va, vb, ref_a, ref_b, k)
    deltas = None
    if golden is not None:
        deltas = golden_deltas(api, *golden, ref_a, ref_b, k)
    return VersionComparison(comparison, alignment, deltas)


def golden_deltas(api: Embedops, db: MonitorDB, set_name: str, collection: str, a: str, b: str,
                  k: int) -> dict[str, dict[str, float]]:
    """Exact-search recall@k, MRR@k and nDCG@k of a golden set under versions ``a`` and
    ``b`` of ``collection``'s vectors, and ``b − a``."""
    from embedops.evaluate.retrieval import evaluate_run
    from embedops.monitor.layers import exact_ranker

    queries = db.queries(set_name, api)
    if not queries:
        raise InvalidInput(f"golden set '{set_name}' has no queries")
    out: dict[str, dict[str, float]] = {}
    for ref in (a, b):
        rank = exact_ranker(api, collection, ref)
        qv = api.models.embed([q.query for q in queries], ref)
        ranked = [rank(v, k) for v in qv]
        scores = evaluate_run(ranked, [q.relevant for q in queries], (k,)).scores
        out[ref] = {key: v for key, v in scores.items() if not key.startswith("precision")}
    out["delta"] = {key: out[b][key] - out[a][key] for key in out[a]}
    return out
