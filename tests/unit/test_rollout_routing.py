"""Routing decisions, the read/write lock and the backfill's token bucket."""

from __future__ import annotations

import threading
import time

import pytest

from embedops.engine.items import TokenBucket, parse_rate
from embedops.errors import InvalidInput, VersionMismatch
from embedops.lifecycle.rollout import RolloutState
from embedops.lifecycle.routing import RWLock, bucket, choose


def _state(phase: str = "canary", share: float = 0.3, mode: str = "canary") -> RolloutState:
    return RolloutState("docs", "m@2", "m@1", mode=mode, share=share, phase=phase)


def test_canary_share_is_respected_and_sticky_per_caller() -> None:
    state = _state(share=0.3)
    callers = [f"key{i}" for i in range(2000)]
    first = [choose(state, c, None, None).version for c in callers]
    assert first == [choose(state, c, None, None).version for c in callers]
    share = first.count("m@2") / len(callers)
    assert 0.25 < share < 0.35 and set(first) == {"m@2", None}
    assert 0 <= bucket("docs", "m@2", "x") < 1


def test_forced_header_and_pins() -> None:
    state = _state(share=1.0)
    assert choose(state, "k", "active", None).version is None
    assert choose(state, "k", "candidate", None).version == "m@2"
    assert choose(state, "k", "m@1", None).version == "m@1"
    assert choose(state, "k", None, "m@1").version == "m@1"
    with pytest.raises(InvalidInput, match="one way only"):
        choose(state, "k", "active", "m@1")
    with pytest.raises(VersionMismatch, match="no rollout candidate"):
        choose(None, "k", "candidate", None)
    with pytest.raises(VersionMismatch):
        choose(_state(phase="backfilling"), "k", "candidate", None)


def test_shadow_answers_with_active_and_runs_candidate_aside() -> None:
    choice = choose(_state(mode="shadow", phase="shadow"), "k", None, None)
    assert choice.version is None and choice.shadow == "m@2"
    promoted = _state(phase="promoted")
    assert choose(promoted, "k", None, None).version is None
    assert choose(promoted, "k", "candidate", None).version == "m@1"
    assert choose(_state(phase="backfilling", share=1.0), "k", None, None).version is None


def test_writer_waits_for_readers_and_blocks_new_ones() -> None:
    lock, order = RWLock(), []
    entered = threading.Event()

    def reader() -> None:
        with lock.read():
            entered.set()
            time.sleep(0.2)
            order.append("reader")

    thread = threading.Thread(target=reader)
    thread.start()
    entered.wait()
    with lock.write():
        order.append("writer")
    thread.join()
    assert order == ["reader", "writer"]


def test_token_bucket_waits_for_tokens() -> None:
    now, slept = [0.0], []
    tb = TokenBucket(100, burst=100, clock=lambda: now[0], sleep=slept.append)
    assert tb.take(100) == 0.0
    assert tb.take(50) == pytest.approx(0.5)
    assert TokenBucket(None).take(10**6) == 0.0
    with pytest.raises(InvalidInput):
        TokenBucket(0)


@pytest.mark.parametrize("text,rate", [("200/s", 200.0), ("5", 5.0), (12, 12.0), (None, None),
                                       ("", None)])
def test_parse_rate(text, rate) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("bad", ["fast", "-3/s", "0"])
def test_bad_rates_are_refused(bad) -> None:
    with pytest.raises(InvalidInput):
        parse_rate(bad)


@pytest.mark.parametrize("bad", [{"share": 0}, {"share": 1.5}, {"mode": "blue"},
                                 {"phase": "odd"}])
def test_bad_states_are_refused(bad) -> None:
    with pytest.raises(InvalidInput):
        RolloutState("docs", "m@2", "m@1", **bad)


def test_router_counts_a_new_rollout_from_zero(tmp_path) -> None:
    from embedops.config import Workspace
    from embedops.fsio import atomic_write_json
    from embedops.lifecycle.rollout import RolloutStore
    from embedops.lifecycle.routing import Router

    store = RolloutStore(Workspace(tmp_path / "ws").ensure())
    router = Router(store)
    first = RolloutState("docs", "m@2", "m@1", phase="canary", started_at=1.0)
    atomic_write_json(store.path("docs"), first.to_dict())
    assert router.state("docs") == first
    router.stats("docs").record("m@2", 0.01)
    atomic_write_json(store.path("docs"), RolloutState("docs", "m@2", "m@1", phase="canary",
                                                      started_at=2.0).to_dict())
    router.invalidate()
    assert router.state("docs").started_at == 2.0
    assert router.stats("docs").summary("m@2").requests == 0
    router.close()
