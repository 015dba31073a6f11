"""Background work of the loop in a process of its own, at a lower CPU priority than serving.

A migration (backfill encoding, candidate index build, golden runs) and a retrain candidate's
training are minutes of CPU. Run in a server's thread they share its interpreter (the GIL) and
its cores at the same priority, and search latency suffers (issue #18 measured search p99 at
3.7-4.4x idle with the migration in a thread of the searching process). So:

- ``lower_priority(nice)`` sets the niceness of the calling thread to ``nice`` (never back up:
  a thread already nicer stays so, and a second call changes nothing). On Linux niceness is per
  thread (``setpriority(PRIO_PROCESS, tid)``) and every thread inherits its creator's, so the
  thread pools a migration creates afterwards (ONNX Runtime's, torch's, gensim's workers) run
  niced as well. At 19 the threads also take Linux's ``SCHED_IDLE`` policy (CPU time nobody
  else wants; a waking search preempts them at once). An unprivileged process cannot lower it
  again: call it only in a thread (or
  process) that does nothing but background work. Elsewhere than Linux the whole process is
  reniced (``os.nice``); without either it does nothing.
- ``at_priority(nice, work)`` runs ``work()`` on a thread of its own at ``nice`` while the
  caller waits for its result: the caller's thread keeps its priority (a migration started
  from a notebook, a test or an application thread does not leave that thread niced).
- ``spawn(job)`` starts ``python -m embedops.lifecycle.worker JOB`` detached from the caller's
  threads: a server hands migrations and candidate training to it instead of running them in
  a thread of its own. The worker lowers its whole process to the job's ``nice`` before doing
  anything and runs the same ``Migrations.run`` / ``Proposals.advance`` the CLI runs.

A job is a small JSON object (never texts or secrets: the worker reads the workspace itself,
and inherits the caller's environment, so ``$EMBEDOPS_KEY`` and friends reach it)::

    {"job": "migrate", "home": "...", "collection": "docs", "who": "key-1",
     "proposal": null, "nice": 10}
    {"job": "candidate", "home": "...", "proposal": "ab12...", "who": "scheduler", "nice": 10}
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

from embedops.errors import InvalidInput

log = logging.getLogger("embedops.lifecycle")
DEFAULT_NICE = 10
JOBS = ("migrate", "candidate")
T = TypeVar("T")


def check_nice(nice: int) -> int:
    """``nice`` if it is a niceness a process may take (0..19), else a clear error."""
    if isinstance(nice, bool) or not isinstance(nice, int) or not 0 <= nice <= 19:
        raise InvalidInput(f"nice must be an integer from 0 to 19, got {nice!r}",
                           "0 leaves the priority as it is; 10 (the default) lets serving "
                           "go first; 19 is the lowest")
    return nice


def lower_priority(nice: int) -> int:
    """Give the calling thread niceness ``nice`` unless it is already higher; returns the
    niceness it has now (unchanged when ``nice`` is 0 or the platform has no priorities)."""
    check_nice(nice)
    tid = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, tid) if sys.platform.startswith(
            "linux") else os.nice(0)
        if sys.platform.startswith("linux"):
            if nice > current:
                os.setpriority(os.PRIO_PROCESS, tid, nice)  # this thread and what it starts
            _idle_policy(tid, nice)
            return max(nice, current)
        if nice <= current:
            return current
        wanted = nice
        return os.nice(wanted - current)
    except (AttributeError, OSError) as exc:  # no such call here, or refused: run as is
        log.warning("could not lower the priority of background work: %s", exc)
        return 0


def lower_process_priority(nice: int) -> None:
    """``lower_priority`` for every thread of this process (Linux: each task under
    /proc/self/task; elsewhere the process). For a process that only does background work."""
    check_nice(nice)
    if nice == 0:
        return
    tasks = Path("/proc/self/task")
    if not sys.platform.startswith("linux") or not tasks.is_dir():
        lower_priority(nice)
        return
    for task in tasks.iterdir():
        try:
            tid = int(task.name)
            if os.getpriority(os.PRIO_PROCESS, tid) < nice:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
            _idle_policy(tid, nice)
        except (ValueError, OSError):  # a thread that ended meanwhile
            continue


def at_priority(nice: int, work: Callable[[], T]) -> T:
    """``work()`` run on a thread of its own at niceness ``nice`` (``lower_priority``) while the
    calling thread waits: its result, or its exception re-raised here. The caller's thread keeps
    its priority; with ``nice`` 0 ``work`` runs on it directly. A Ctrl-C reaches the caller at
    once and the work's thread (a daemon) ends with the process, as a crash would end it."""
    check_nice(nice)
    if nice == 0:
        return work()
    outcome: dict[str, Any] = {}

    def body() -> None:
        try:
            lower_priority(nice)
            outcome["value"] = work()
        except BaseException as exc:  # handed to the caller, which re-raises it
            outcome["error"] = exc

    thread = threading.Thread(target=body, name="embedops-background", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.5)  # a join with a timeout lets KeyboardInterrupt through
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


def _idle_policy(tid: int, nice: int) -> None:
    """At niceness 19 also the ``SCHED_IDLE`` policy (Linux): the thread runs only on CPU time
    no other thread wants, and a waking search preempts it at once."""
    if nice == 19 and hasattr(os, "SCHED_IDLE"):
        os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))


def spawn(job: dict[str, Any], log_path: Path | None = None) -> subprocess.Popen[bytes]:
    """Start the worker process for ``job`` (see the module doc) and return it; its output goes
    to ``log_path`` (appended) or is dropped."""
    if job.get("job") not in JOBS:
        raise InvalidInput(f"unknown background job {job.get('job')!r}",
                           f"use one of {', '.join(JOBS)}")
    check_nice(int(job.get("nice", DEFAULT_NICE)))
    env = {**os.environ, "EMBEDOPS_QUIET": "1"}
    with contextlib.ExitStack() as stack:
        out: int | IO[bytes] = subprocess.DEVNULL
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            out = stack.enter_context(open(log_path, "ab"))  # the child keeps its own copy
        return subprocess.Popen(
            [sys.executable, "-m", "embedops.lifecycle.worker", json.dumps(job)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
            start_new_session=True)  # a Ctrl-C meant for the server does not reach it


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run ``job`` in this process (the worker's body): lower this process's priority to the
    job's ``nice``, then migrate or train the proposal's candidate. Returns the final state."""
    from embedops.config import Workspace
    from embedops.engine import Embedops

    lower_process_priority(int(job.get("nice", DEFAULT_NICE)))
    who = str(job.get("who") or "worker")
    with Embedops(Workspace(Path(job["home"]))) as api:
        if job["job"] == "candidate":
            from embedops.lifecycle.proposals import Proposals

            return Proposals(api, who).advance(str(job["proposal"]))
        from embedops.lifecycle.migrate import Migrations
        from embedops.lifecycle.proposals import Proposals

        if job.get("proposal"):
            _, state = Proposals(api, who).migrate(str(job["proposal"]),
                                                   collection=str(job["collection"]))
            return state
        return Migrations(api, who=who).run(str(job["collection"]), None)


def main(argv: list[str] | None = None) -> int:
    """``python -m embedops.lifecycle.worker JOB_JSON``: run one job; 0 when it ran to its end
    (a rolled-back migration included), 1 with a one-line reason on stderr otherwise."""
    from embedops.errors import EmbedopsError

    args = sys.argv[1:] if argv is None else argv
    try:
        job = json.loads(args[0]) if len(args) == 1 else None
    except json.JSONDecodeError:
        job = None
    if not isinstance(job, dict) or job.get("job") not in JOBS or "home" not in job:
        print("error: the worker takes one JSON job argument with 'job' (migrate or "
              "candidate) and 'home'", file=sys.stderr)
        return 2
    try:
        state = run_job(job)
    except EmbedopsError as exc:
        print(f"error: background {job['job']} stopped: {exc.message}"
              + (f" ({exc.hint})" if exc.hint else ""), file=sys.stderr)
        return 1
    print(json.dumps({"job": job["job"], "step": state.get("step"),
                      "status": state.get("status")}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
