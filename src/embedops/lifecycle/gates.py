"""Promotion gates: the candidate may replace the active version only when every gate holds.

A gate is *pending* while too little evidence exists (not enough traffic, no golden run yet)
and *broken* when the evidence says the candidate is worse. A pending gate blocks promotion; a
broken gate during a canary rolls the canary back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from embedops.errors import InvalidInput
from embedops.lifecycle.stats import VersionStats

if TYPE_CHECKING:
    from embedops.engine import Embedops

PASS, PENDING, BROKEN = "pass", "pending", "broken"


def bound_golden_set(api: Embedops, collection: str, purpose: str, fix: str) -> str:
    """The one golden set bound to ``collection``; refused with ``purpose`` (what needs it),
    the sets found, and ``fix`` unless exactly one is bound."""
    from embedops.monitor.db import MonitorDB

    db = MonitorDB(api.workspace, api)
    try:
        bound = [s.name for s in db.list_sets() if s.collection == collection]
    finally:
        db.close()
    if len(bound) != 1:
        found = f"sets bound to it: {', '.join(bound)}" if bound else "no set is bound to it"
        raise InvalidInput(f"{purpose}; {found}", fix)
    return bound[0]


@dataclass(frozen=True)
class GateConfig:
    """Limits a candidate must meet. ``golden_set`` None skips the recall gate."""

    golden_set: str | None = None
    golden_k: int = 10
    recall_tolerance: float = 0.02
    max_p99_ms: float = 1000.0
    max_error_ratio: float = 0.01
    min_requests: int = 100
    # Below this many candidate requests an error ratio is noise: one early error out of five
    # requests must not roll a canary back.
    min_requests_to_judge: int = 20

    def __post_init__(self) -> None:
        checks = {
            "recall_tolerance": 0.0 <= self.recall_tolerance <= 1.0,
            "max_p99_ms": self.max_p99_ms > 0,
            "max_error_ratio": 0.0 <= self.max_error_ratio <= 1.0,
            "min_requests": self.min_requests >= 0,
            "min_requests_to_judge": self.min_requests_to_judge >= 1,
            "golden_k": 1 <= self.golden_k <= 1000,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise InvalidInput(f"gate settings out of range: {', '.join(bad)}",
                               "ratios lie in 0..1, limits are positive, golden_k is 1..1000")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GateCheck:
    """One gate's verdict: ``status`` is pass, pending or broken."""

    name: str
    status: str
    value: float | None
    limit: float | None
    detail: str


@dataclass(frozen=True)
class GateReport:
    """Every gate's verdict; ``passed`` only when all pass, ``broken`` when any is broken."""

    checks: tuple[GateCheck, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return all(c.status == PASS for c in self.checks)

    @property
    def broken(self) -> list[GateCheck]:
        return [c for c in self.checks if c.status == BROKEN]

    def reasons(self) -> list[str]:
        """One line per gate that does not pass."""
        return [f"{c.name} {c.status}: {c.detail}" for c in self.checks if c.status != PASS]

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "broken": bool(self.broken),
                "checks": [asdict(c) for c in self.checks]}


def _traffic(config: GateConfig, cand: VersionStats) -> GateCheck:
    ok = cand.requests >= config.min_requests
    return GateCheck("traffic", PASS if ok else PENDING, cand.requests, config.min_requests,
                     f"{cand.requests} candidate requests seen, {config.min_requests} needed")


def _errors(config: GateConfig, cand: VersionStats) -> GateCheck:
    ratio = cand.error_ratio
    if ratio > config.max_error_ratio and cand.requests >= config.min_requests_to_judge:
        status = BROKEN
    elif cand.requests < config.min_requests_to_judge:
        status = PENDING
    else:
        status = PASS
    return GateCheck("error_ratio", status, round(ratio, 6), config.max_error_ratio,
                     f"{cand.errors} errors in {cand.requests} requests")


def _latency(config: GateConfig, cand: VersionStats) -> GateCheck:
    p99 = cand.p99_ms
    if p99 is None or cand.requests < config.min_requests_to_judge:
        return GateCheck("p99_ms", PENDING, p99, config.max_p99_ms, "not enough requests yet")
    status = PASS if p99 <= config.max_p99_ms else BROKEN
    return GateCheck("p99_ms", status, p99, config.max_p99_ms,
                     f"p99 {p99:.1f} ms, limit {config.max_p99_ms:.1f} ms")


def _recall(config: GateConfig, active: float | None, cand: float | None) -> GateCheck:
    limit = None if active is None else round(active - config.recall_tolerance, 6)
    if cand is None or active is None or limit is None:
        missing = "candidate" if cand is None else "active"
        return GateCheck("golden_recall", PENDING, cand, limit,
                         f"no golden run of '{config.golden_set}' for the {missing} version yet")
    status = PASS if cand >= limit else BROKEN
    return GateCheck("golden_recall", status, cand, limit,
                     f"candidate recall@{config.golden_k} {cand:.4f}, active {active:.4f}, "
                     f"tolerance {config.recall_tolerance}")


def evaluate_gates(
    config: GateConfig,
    candidate: VersionStats,
    active_recall: float | None = None,
    candidate_recall: float | None = None,
) -> GateReport:
    """The verdict of every configured gate on the candidate's figures."""
    checks = [_traffic(config, candidate), _errors(config, candidate),
              _latency(config, candidate)]
    if config.golden_set:
        checks.append(_recall(config, active_recall, candidate_recall))
    return GateReport(tuple(checks))
