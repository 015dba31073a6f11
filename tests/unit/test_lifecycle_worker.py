"""Background work at a lower CPU priority (``lifecycle.worker``): per-thread niceness that the
threads started afterwards inherit, never raised back, and the worker's refusals."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from embedops.errors import InvalidInput
from embedops.lifecycle.migrate import MigrateOptions
from embedops.lifecycle.worker import at_priority, check_nice, lower_priority, main, spawn

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice")


def _nice_of_this_thread() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@linux
def test_lower_priority_is_per_thread_and_inherited() -> None:
    seen: dict[str, int] = {}

    def background() -> None:
        seen["set"] = lower_priority(7)
        seen["again"] = lower_priority(3)  # never back up
        child = threading.Thread(target=lambda: seen.setdefault("child", _nice_of_this_thread()))
        child.start()
        child.join()
        seen["self"] = _nice_of_this_thread()

    before = _nice_of_this_thread()
    thread = threading.Thread(target=background)
    thread.start()
    thread.join()
    wanted = max(before, 7)
    assert seen == {"set": wanted, "again": wanted, "child": wanted, "self": wanted}
    assert _nice_of_this_thread() == before  # the caller's thread is untouched


def test_nice_is_checked_with_a_clear_error() -> None:
    assert check_nice(0) == 0 and check_nice(19) == 19
    for bad in (-1, 20, True, 2.5):
        with pytest.raises(InvalidInput, match="nice must be an integer from 0 to 19"):
            check_nice(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="nice must be"):
        MigrateOptions(nice=42)
    assert MigrateOptions().nice == 10


def test_worker_refuses_bad_jobs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["{not json"]) == 2
    assert main(['{"job": "dance", "home": "/tmp"}']) == 2
    assert "one JSON job argument" in capsys.readouterr().err
    with pytest.raises(InvalidInput, match="unknown background job 'dance'"):
        spawn({"job": "dance", "home": "/tmp"})


@linux
def test_nice_19_also_takes_the_idle_policy() -> None:
    seen: dict[str, object] = {}

    def background() -> None:
        seen["nice"] = lower_priority(19)
        seen["idle"] = os.sched_getscheduler(threading.get_native_id()) == os.SCHED_IDLE

    thread = threading.Thread(target=background)
    thread.start()
    thread.join()
    assert seen == {"nice": 19, "idle": True}
    assert os.sched_getscheduler(threading.get_native_id()) != os.SCHED_IDLE


@linux
def test_at_priority_runs_the_work_niced_and_leaves_the_caller_as_it_was() -> None:
    before = _nice_of_this_thread()
    seen: dict[str, object] = {}

    def work() -> str:
        seen["nice"] = _nice_of_this_thread()
        seen["thread"] = threading.get_native_id()
        return "done"

    assert at_priority(7, work) == "done"
    assert seen["nice"] == max(before, 7) and seen["thread"] != threading.get_native_id()
    assert _nice_of_this_thread() == before
    assert at_priority(0, work) == "done"  # 0: on the caller's thread, as it is
    assert seen["thread"] == threading.get_native_id() and seen["nice"] == before


def test_at_priority_hands_the_works_exception_to_the_caller() -> None:
    def work() -> None:
        raise InvalidInput("bad collection", "pick another")

    with pytest.raises(InvalidInput, match="bad collection") as caught:
        at_priority(5, work)
    assert caught.traceback[-1].name == "work"  # the work's own traceback, kept
    with pytest.raises(InvalidInput, match="nice must be"):
        at_priority(20, lambda: None)
