"""Golden query sets: queries with known relevant ids, evaluated through the facade's search.

A run searches every query of a set in a collection, scores the results with recall@k,
precision@k, MRR@k and nDCG@k (``embedops.evaluate.retrieval``) and stores the scores with the
model version, index snapshot and parameters that produced them, so the history shows when
and why quality moved.

    db = MonitorDB(workspace)
    db.create_set("faq"); db.add_queries("faq", [GoldenQuery("reset password", {"12": 1.0})])
    run = run_golden(api, db, "docs", "faq", ks=(1, 10))
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from embedops.engine import Embedops
from embedops.engine.checks import check_mode
from embedops.errors import EmbedopsError, InvalidInput, NotFound
from embedops.evaluate.retrieval import evaluate_run
from embedops.monitor.db import GoldenQuery, MonitorDB, RunRecord
from embedops.progress import progress_bar

MAX_QUERY_CHARS = 10_000


class QualityGateFailed(EmbedopsError):
    """A monitored figure crossed its gate: a golden recall under ``--min-recall``, or drift
    with ``--fail-on-drift`` (the CLI exits 1, so CI fails the step)."""

    http_status = 409
    code = "quality_gate_failed"


def parse_relevant(relevant: Any, where: str = "") -> dict[str, float]:
    """``{id: grade}`` from a list of ids (grade 1) or a mapping id → grade (a number >= 0,
    at least one > 0)."""
    prefix = f"{where}: " if where else ""
    if isinstance(relevant, Mapping):
        out: dict[str, float] = {}
        for key, grade in relevant.items():
            if isinstance(grade, bool) or not isinstance(grade, int | float) \
                    or not math.isfinite(grade) or grade < 0:
                raise InvalidInput(f"{prefix}grade of {key!r} must be a number >= 0, got "
                                   f"{grade!r}")
            out[str(key)] = float(grade)
    elif isinstance(relevant, list | tuple) and all(isinstance(r, str | int) for r in relevant):
        out = {str(r): 1.0 for r in relevant}
    else:
        raise InvalidInput(f"{prefix}'relevant' must be a list of ids or an object id → grade",
                           'write "relevant": ["id1", "id2"] or {"id1": 2, "id2": 1}')
    if not any(g > 0 for g in out.values()) or any(not k for k in out):
        raise InvalidInput(f"{prefix}a golden query needs at least one relevant id (grade > 0)")
    return out


def make_query(query: Any, relevant: Any, where: str = "") -> GoldenQuery:
    """A validated golden query."""
    prefix = f"{where}: " if where else ""
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput(f"{prefix}'query' must be a non-empty string")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInput(f"{prefix}the query has {len(query)} characters; the limit is "
                           f"{MAX_QUERY_CHARS}")
    return GoldenQuery(query, parse_relevant(relevant, where))


def grades_from_options(relevant: Sequence[str], grades: Sequence[str]) -> dict[str, float]:
    """Merge ``--relevant ID`` (grade 1) and ``--grade ID=G`` options into ``{id: grade}``."""
    out: dict[str, float] = {r: 1.0 for r in relevant}
    for option in grades:
        key, sep, value = option.rpartition("=")
        try:
            out[key] = float(value)
        except ValueError:
            key = ""
        if not sep or not key:
            raise InvalidInput(f"--grade {option!r} is not ID=GRADE", "write --grade doc7=2")
    return out


def read_jsonl(path: Path) -> list[GoldenQuery]:
    """Queries from a JSONL file of ``{"query", "relevant"}`` lines; a bad line is refused
    with its line number (nothing is imported then)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from exc
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{where}: not valid JSON ({exc.msg})") from exc
        if not isinstance(row, dict) or "query" not in row or "relevant" not in row:
            raise InvalidInput(f"{where}: expected an object with 'query' and 'relevant'",
                               '{"query": "...", "relevant": ["id1"]}')
        out.append(make_query(row["query"], row["relevant"], where))
    if not out:
        raise InvalidInput(f"{path} holds no queries")
    return out


def search_ids(api: Embedops, collection: str, query: str, k: int, mode: str,
               model_version: str | None) -> list[str]:
    """Ids the facade's search returns for ``query``, best first."""
    response = api.search(collection, query, k=k, mode=mode, model_version=model_version)
    return [hit.id for hit in response.hits]


def _snapshot(api: Embedops, collection: str, version: str | None, mode: str) -> str | None:
    if mode == "lexical":
        return None
    snapshot = api.index_status(collection, version).get("snapshot") or {}
    name = snapshot.get("name")
    return str(name) if name else None


def check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    """Sorted distinct cut-offs, each 1..1000."""
    if not ks:
        return (10,)
    bad = [k for k in ks if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 1000]
    if bad:
        raise InvalidInput(f"cut-offs k must be integers in 1..1000, got {bad}")
    return tuple(sorted(set(ks)))


def run_golden(api: Embedops, db: MonitorDB, collection: str, set_name: str,
               ks: Sequence[int] = (10,), mode: str = "dense",
               model_version: str | None = None, quiet: bool | None = None) -> RunRecord:
    """Evaluate set ``set_name`` on ``collection`` through ``api.search`` and store the run."""
    cut = check_ks(ks)
    mode = check_mode(mode)  # one spelling in the stored history: two-stage → two_stage
    queries = db.queries(set_name, api)
    if not queries:
        raise NotFound(f"golden set '{set_name}' has no queries",
                       f"add some with 'embedops golden add {set_name} \"query\" --relevant ID'")
    info = api.collections.info(collection)
    version = None if mode == "lexical" else (model_version or info.model_version)
    ranked = []
    with progress_bar(f"golden {set_name} on {collection}", total=len(queries), unit="queries",
                      quiet=quiet) as task:
        for q in queries:
            ranked.append(search_ids(api, collection, q.query, max(cut), mode, model_version))
            task.advance(1)
    scores = evaluate_run(ranked, [q.relevant for q in queries], cut)
    params = {"ks": list(cut), "mode": mode}
    return db.record_run(set_name, collection, version, _snapshot(api, collection, version, mode),
                         params, dict(scores.scores), scores.n_queries)


#: ``RecallGates`` key meaning "every k of the run".
EVERY_K: int | None = None
RecallGates = Mapping[int | None, float]


def parse_recall_gates(values: Sequence[str | float]) -> dict[int | None, float]:
    """``{k: minimum}`` from ``--min-recall`` values: ``10=0.6`` gates recall@10 only; a bare
    ``0.6`` (the older spelling) gates every k of the run (key ``EVERY_K``)."""
    gates: dict[int | None, float] = {}
    for value in values:
        text = str(value).strip()
        k_text, sep, min_text = text.rpartition("=")
        try:
            k = int(k_text) if sep else EVERY_K
            minimum = float(min_text)
        except ValueError as exc:
            raise InvalidInput(f"cannot read --min-recall {text!r}",
                               "write K=MIN (e.g. 10=0.6, recall@10 at least 0.6) or MIN for "
                               "every k") from exc
        if not 0.0 <= minimum <= 1.0 or not math.isfinite(minimum):
            raise InvalidInput(f"--min-recall {text!r}: the minimum must lie in 0..1")
        if k is not None and not 1 <= k <= 1000:
            raise InvalidInput(f"--min-recall {text!r}: k must be in 1..1000")
        gates[k] = minimum
    return gates


def check_gate_ks(gates: RecallGates, ks: Sequence[int]) -> tuple[int, ...]:
    """The run's cut-offs (``check_ks``), after checking that every gated k is one of them: a
    gate on a k the run does not compute is refused before any search is made."""
    cut = check_ks(ks)
    missing = sorted(k for k in gates if k is not None and k not in cut)
    if missing:
        raise InvalidInput(
            f"--min-recall gates recall@{', recall@'.join(map(str, missing))} but the run "
            f"computes only k = {', '.join(map(str, cut))}",
            " ".join(f"-k {k}" for k in missing) + " adds that cut-off")
    return cut


def check_gate(run: RunRecord, min_recall: float | RecallGates | None) -> list[str]:
    """Which ``recall@k`` of ``run`` fall under their gate (empty: the gate passes).
    ``min_recall`` is ``{k: minimum}`` (``EVERY_K`` for every k of the run) or, as before, one
    number for every k."""
    if min_recall is None:
        return []
    gates = {EVERY_K: float(min_recall)} if isinstance(min_recall, int | float) \
        else dict(min_recall)
    failed = []
    for key, value in sorted(run.scores.items(), key=lambda kv: _recall_k(kv[0])):
        if not key.startswith("recall@"):
            continue
        k = _recall_k(key)
        limit = gates.get(k, gates.get(EVERY_K))
        if limit is not None and value < limit:
            failed.append(f"{key} = {value:.4f} < {limit}")
    return failed


def _recall_k(key: str) -> int:
    _, _, k = key.partition("@")
    return int(k) if k.isdigit() else 0
