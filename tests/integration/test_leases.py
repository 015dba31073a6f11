"""Schedules run once per deployment: leases in monitor.db elect one worker per job, and each
interval runs once, across threads and across processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter

from serve_helpers import lee_documents, publish_lee_model

from embedops.config import Workspace
from embedops.engine import Embedops
from embedops.monitor.db import GoldenQuery, MonitorDB
from embedops.monitor.leases import Leases
from embedops.serve.scheduler import GOLDEN_JOB, GoldenScheduler, MonitorSettings

# A worker process: claims job "tick" every 20 ms for ``seconds`` and prints the intervals
# (slots) it won.
WORKER = r"""
import json, sys, time
from embedops.config import Workspace
from embedops.monitor.db import MonitorDB
from embedops.monitor.leases import Leases
home, interval, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
leases = Leases(MonitorDB(Workspace.from_env(home)))
won, end = [], time.time() + seconds
while time.time() < end:
    now = time.time()
    if leases.claim("tick", interval, ttl_s=interval * 2, now=now):
        won.append(int(now // interval))
    time.sleep(0.02)
print(json.dumps(won))
"""


def test_claim_is_exclusive_and_takes_over_after_expiry(workspace: Workspace) -> None:
    db = MonitorDB(workspace)
    a, b = Leases(db, "a"), Leases(db, "b")
    assert a.claim("job", 10, now=100.0)  # slot 10, lease until 130
    assert not a.claim("job", 10, now=105.0)  # same interval: already ran
    assert not b.claim("job", 10, now=112.0)  # a holds the lease
    assert a.claim("job", 10, now=112.0)  # a's next interval
    assert not b.claim("job", 10, now=141.0)  # renewed until 142
    assert b.claim("job", 10, now=143.0)  # a died: b takes over
    lease = b.get("job")
    assert lease is not None and (lease.holder, lease.last_slot) == ("b", 14)
    b.release("job")
    assert a.claim("job", 10, now=151.0)  # released: a takes it back at once
    db.close()


def test_two_processes_one_run_per_interval(workspace: Workspace) -> None:
    MonitorDB(workspace).close()  # create the schema before the race
    interval, seconds = 0.25, 3.0
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(workspace.home), str(interval),
                               str(seconds)], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    won = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    slots = Counter(s for w in won for s in w)
    assert slots and max(slots.values()) == 1, slots  # never two runs in one interval
    span = max(slots) - min(slots) + 1
    assert len(slots) >= span - 2, (len(slots), span)  # and (almost) none skipped


def test_two_schedulers_one_golden_run_per_interval(workspace: Workspace) -> None:
    publish_lee_model(workspace, "lee", dim=16)
    with Embedops(workspace) as api:
        api.collections.create("docs", model="lee@1")
        docs = lee_documents(30)
        api.upsert_items("docs", docs)
        api.build_index("docs", quiet=True)
        db = MonitorDB(workspace, api)
        db.create_set("gold", "docs")
        db.add_queries("gold", [GoldenQuery(d["text"][:60], {d["id"]: 1.0}) for d in docs[:5]])
        settings = MonitorSettings(golden_interval_s=0.5)
        workers = [GoldenScheduler(lambda: api, MonitorDB(workspace, api), settings, f"w{i}")
                   for i in range(2)]
        started = time.time()
        for w in workers:
            w.start()
        time.sleep(3.0)
        for w in workers:
            w.stop()
        elapsed = time.time() - started
        runs = db.runs("gold", "docs", limit=1000)
        executions = sum(w.executions.get(GOLDEN_JOB, 0) for w in workers)
        assert len(runs) == executions == sum(w.runs for w in workers)
        assert 2 <= executions <= elapsed / 0.5 + 1, (executions, elapsed)
        db.close()
