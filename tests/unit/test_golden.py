"""Golden sets in the monitor database: validation of queries and files, storage, run history
and the latest-run view that /metrics reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedops.config import Workspace
from embedops.errors import AlreadyExists, IntegrityError, InvalidInput, NotFound
from embedops.monitor.db import MonitorDB
from embedops.monitor.golden import (
    check_gate,
    check_ks,
    grades_from_options,
    make_query,
    parse_relevant,
    read_jsonl,
)


def test_relevance_forms() -> None:
    assert parse_relevant(["a", "b"]) == {"a": 1.0, "b": 1.0}
    assert parse_relevant({"a": 2, "b": 0}) == {"a": 2.0, "b": 0.0}
    for bad in ([], {"a": 0}, {"a": -1}, {"a": "x"}, "a", [None], {"a": float("nan")}):
        with pytest.raises(InvalidInput):
            parse_relevant(bad)
    assert grades_from_options(["a"], ["b=2", "a=3"]) == {"a": 3.0, "b": 2.0}
    with pytest.raises(InvalidInput, match="ID=GRADE"):
        grades_from_options([], ["b=x"])
    with pytest.raises(InvalidInput, match="non-empty"):
        make_query("  ", ["a"])
    assert check_ks([10, 1, 10]) == (1, 10)
    with pytest.raises(InvalidInput, match="1..1000"):
        check_ks([0])


def test_jsonl_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    path.write_text('{"query": "q", "relevant": ["a"]}\n\n{"query": "r"}\n')
    with pytest.raises(InvalidInput, match="line 3: expected an object"):
        read_jsonl(path)
    path.write_text('{"query": "q", "relevant": {"a": 2}}\n')
    assert read_jsonl(path)[0].relevant == {"a": 2.0}
    path.write_text("\n")
    with pytest.raises(InvalidInput, match="no queries"):
        read_jsonl(path)
    with pytest.raises(InvalidInput, match="cannot read"):
        read_jsonl(tmp_path / "missing.jsonl")


def test_sets_runs_and_latest(workspace: Workspace) -> None:
    db = MonitorDB(workspace)
    db.create_set("faq", "docs", "support questions")
    with pytest.raises(AlreadyExists):
        db.create_set("faq")
    with pytest.raises(InvalidInput, match="collection name"):
        db.create_set("other", "../etc")
    with pytest.raises(NotFound, match="golden create nope"):
        db.queries("nope")
    assert db.add_queries("faq", [make_query("reset", ["1"]), make_query("login", {"2": 2})]) == 2
    assert [q.query for q in db.queries("faq")] == ["reset", "login"]
    first = db.record_run("faq", "docs", "m@1", "snap-1", {"ks": [10]}, {"recall@10": 0.5}, 2)
    second = db.record_run("faq", "docs", "m@1", "snap-2", {"ks": [10]}, {"recall@10": 0.7}, 2)
    db.record_run("faq", "docs", "m@2", "snap-3", {"ks": [10]}, {"recall@10": 0.9}, 2)
    assert [r.id for r in db.runs("faq", limit=2)][1] == second.id
    latest = {(r.model_version, r.snapshot) for r in db.latest_runs()}
    assert latest == {("m@1", "snap-2"), ("m@2", "snap-3")}
    assert check_gate(first, 0.6) == ["recall@10 = 0.5000 < 0.6"] and not check_gate(second, 0.6)
    reopened = MonitorDB(workspace)
    assert reopened.get_set("faq").n_queries == 2 and reopened.list_sets()[0].collection == "docs"
    db.record_drift("docs", "m@1", {"drifted": True})
    assert reopened.latest_drift()["docs"]["report"] == {"drifted": True}


def test_not_a_database_is_refused(workspace: Workspace) -> None:
    (workspace.home / "monitor.db").write_bytes(b"garbage" * 200)
    with pytest.raises(IntegrityError, match="not a monitor database"):
        MonitorDB(workspace)
