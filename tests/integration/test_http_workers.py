"""``embedops serve --workers 2`` on Linux: one SO_REUSEPORT listening socket per worker, a worker
that dies is replaced, and SIGTERM stops them all."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from serve_helpers import free_port, wait_until

from embedops.config import Workspace
from embedops.serve.workers import reuse_port_socket, reuse_port_supported

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not reuse_port_supported(), reason="SO_REUSEPORT balancing is Linux's"),
]


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"spawn_main" in cmdline:
                found.add(int(entry.name))
    return found


def test_reuse_port_sockets_share_a_port() -> None:
    first = reuse_port_socket("127.0.0.1", 0)
    port = first.getsockname()[1]
    second = reuse_port_socket("127.0.0.1", port)
    try:
        for sock in (first, second):
            sock.listen()
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            ready, _, _ = select.select([first, second], [], [], 5)
            assert len(ready) == 1  # the kernel gave the connection to one of the two
    finally:
        first.close()
        second.close()


def test_two_workers_are_replaced_when_they_die_and_stop_on_sigterm(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    port = free_port()
    cmd = [sys.executable, "-m", "embedops.cli.main", "--home", str(ws.home), "serve",
           "--port", str(port), "--no-auth", "--workers", "2", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: len(_children(proc.pid)) == 2, timeout=60, what="two workers")
        wait_until(lambda: httpx.get(f"{base}/readyz", timeout=2).status_code == 200,
                   timeout=60, what="ready")
        for _ in range(40):  # a new connection each time: every one is answered
            assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
        victim = min(_children(proc.pid))
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: victim not in _children(proc.pid)
                   and len(_children(proc.pid)) == 2, timeout=60, what="a replacement worker")
        wait_until(lambda: all(httpx.get(f"{base}/readyz", timeout=2).status_code == 200
                               for _ in range(20)), timeout=60, what="ready again")
        workers = _children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        time.sleep(0.2)
        assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_workers_stop_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    """SIGKILL leaves the supervisor no time to stop its workers: the kernel's parent-death
    signal does (an orphaned worker would keep the port, its index and its CPU)."""
    ws = Workspace(tmp_path / "ws").ensure()
    port = free_port()
    cmd = [sys.executable, "-m", "embedops.cli.main", "--home", str(ws.home), "serve",
           "--port", str(port), "--no-auth", "--workers", "2", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: len(_children(proc.pid)) == 2, timeout=60, what="two workers")
        workers = _children(proc.pid)
        proc.kill()
        proc.wait()
        wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers),
                   timeout=60, what="the workers to stop")
    finally:
        for pid in _children(proc.pid):
            os.kill(pid, signal.SIGKILL)
