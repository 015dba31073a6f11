"""Promotion gates: pass, pending and broken verdicts on real figures."""

from __future__ import annotations

import pytest

from embedops.errors import InvalidInput
from embedops.lifecycle.gates import BROKEN, PASS, PENDING, GateConfig, evaluate_gates
from embedops.lifecycle.stats import RolloutStats, VersionStats, overlap_at_k, stats_from_dict


def _status(report, name: str) -> str:
    return next(c.status for c in report.checks if c.name == name)


def test_healthy_candidate_with_enough_traffic_passes() -> None:
    config = GateConfig(golden_set="g", min_requests=50, max_p99_ms=100)
    cand = VersionStats("m@2", requests=60, errors=0, p50_ms=5, p99_ms=40)
    report = evaluate_gates(config, cand, active_recall=0.80, candidate_recall=0.79)
    assert report.passed and not report.broken and report.reasons() == []


def test_too_little_traffic_or_no_golden_run_is_pending_not_broken() -> None:
    config = GateConfig(golden_set="g", min_requests=100)
    report = evaluate_gates(config, VersionStats("m@2", requests=5, errors=1, p99_ms=9000))
    assert not report.passed and not report.broken
    assert {_status(report, n) for n in ("traffic", "error_ratio", "p99_ms", "golden_recall")} \
        == {PENDING}
    assert any("no golden run" in r for r in report.reasons())


@pytest.mark.parametrize("field,cand,recall,broken", [
    ("error_ratio", VersionStats("m@2", 100, 5, 1, 2), 0.8, "error_ratio"),
    ("p99_ms", VersionStats("m@2", 100, 0, 1, 5000), 0.8, "p99_ms"),
    ("golden_recall", VersionStats("m@2", 100, 0, 1, 2), 0.7, "golden_recall"),
])
def test_each_gate_breaks_on_its_own_limit(field, cand, recall, broken) -> None:
    config = GateConfig(golden_set="g", recall_tolerance=0.05, max_p99_ms=1000)
    report = evaluate_gates(config, cand, active_recall=0.8, candidate_recall=recall)
    assert [c.name for c in report.broken] == [broken]
    assert _status(report, "traffic") == PASS and not report.passed


def test_without_a_golden_set_the_recall_gate_is_skipped() -> None:
    report = evaluate_gates(GateConfig(min_requests=1), VersionStats("m@2", 30, 0, 1, 2))
    assert [c.name for c in report.checks] == ["traffic", "error_ratio", "p99_ms"]
    assert report.passed


@pytest.mark.parametrize("bad", [{"recall_tolerance": 2}, {"max_p99_ms": 0},
                                 {"max_error_ratio": -0.1}, {"min_requests": -1},
                                 {"golden_k": 0}])
def test_out_of_range_settings_are_refused(bad) -> None:
    with pytest.raises(InvalidInput, match="gate settings out of range"):
        GateConfig(**bad)


def test_config_round_trips_through_its_constructor() -> None:
    config = GateConfig(golden_set="g", golden_k=5, max_p99_ms=250)
    assert GateConfig(**config.to_dict()) == config


def test_stats_summaries_round_trip_and_count_errors() -> None:
    stats = RolloutStats()
    for ms in range(1, 101):
        stats.record("m@2", ms / 1000)
    stats.record("m@2", 0.5, error=True)
    stats.record_overlap("m@2", overlap_at_k(["a", "b"], ["b", "c"]))
    summary = stats.summary("m@2")
    assert summary.requests == 101 and summary.errors == 1 and summary.overlap == 0.5
    assert 98 <= summary.p99_ms <= 100 and summary.p50_ms == pytest.approx(50.5)
    assert stats_from_dict(stats.to_dict(), "m@2") == summary
    assert stats_from_dict({}, "x@1") == VersionStats("x@1")
    assert BROKEN != PASS
