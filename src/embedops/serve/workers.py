"""Several server processes on one port, each with a listening socket of its own (Linux).

uvicorn's ``--workers`` shares one listening socket between its processes. Whichever process
wakes first accepts every connection waiting, so a client pool that opens its keep-alive
connections at once lands on one process while the others idle (measured with the serving
benchmark's 8 connections and 2 workers: all 8 on one worker in most rounds, so one Python
process did all the work). Here every worker binds its own socket with ``SO_REUSEPORT`` and
Linux spreads new connections over the listening sockets by a hash of their addresses, as
gunicorn's ``--reuse-port`` and nginx's ``reuse_port`` do.

The supervisor (``serve_workers``) keeps a bound, never-listening socket on the port (so port 0
gets one port for all, and the port stays ours between restarts), starts the workers, restarts
one that dies, stops everything if a worker fails at start-up, and on SIGTERM/SIGINT asks every
worker to drain and stop (each one's graceful shutdown is uvicorn's).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from embedops.serve.logging import LOGGER
from embedops.serve.settings import ServeSettings

log = logging.getLogger(LOGGER)
STARTUP_FAILURE = 3  # uvicorn's exit status for a worker that could not start serving


def reuse_port_supported() -> bool:
    """Whether the kernel balances connections between ``SO_REUSEPORT`` sockets (Linux does;
    BSD and macOS accept the option without balancing)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT`` (not listening yet)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _die_with(parent: int) -> None:
    """Have the kernel send this worker SIGTERM when the supervisor dies, even by SIGKILL (an
    orphaned worker kept its port and gigabytes of index, and burned CPU, until found by
    hand); exit now if it already has."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != parent:  # died before the request took effect
        os._exit(0)


def _worker(settings: dict[str, Any], parent: int | None = None
            ) -> None:  # pragma: no cover - runs in a child process
    """One worker: its own socket on the port, then uvicorn until SIGTERM/SIGINT (or until
    the supervisor ``parent`` dies)."""
    from embedops.serve.server import make_server

    if parent is not None:
        _die_with(parent)

    one = ServeSettings(**settings).replace(workers=1)
    sock = reuse_port_socket(one.host, one.port)
    make_server(one).run(sockets=[sock])


class _Supervisor:
    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.context = multiprocessing.get_context("spawn")
        self.processes: list[Any] = []
        self.stop = threading.Event()

    def _start(self) -> Any:
        process = self.context.Process(target=_worker,
                                       args=(self.settings.to_dict(), os.getpid()),
                                       name="embedops-worker")
        process.start()
        return process

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stop.set()

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        self.processes = [self._start() for _ in range(self.settings.workers)]
        status = 0
        while not self.stop.wait(0.5):
            for i, process in enumerate(self.processes):
                if process.is_alive():
                    continue
                if process.exitcode == STARTUP_FAILURE:
                    log.error("worker %s failed to start; stopping", process.pid)
                    self.stop.set()
                    status = STARTUP_FAILURE
                    break
                log.warning("worker %s exited (%s); starting another", process.pid,
                            process.exitcode)
                self.processes[i] = self._start()
        self._shutdown()
        return status

    def _shutdown(self) -> None:
        for process in self.processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn drains requests in flight, then exits
        deadline = time.monotonic() + self.settings.graceful_timeout_s + 10
        for process in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()


def serve_workers(
    settings: ServeSettings, on_listening: Callable[[str, int], None] | None = None
) -> int:
    """Run ``settings.workers`` processes on ``settings.port`` until SIGTERM/SIGINT; returns the
    exit status (3 when a worker could not start). ``on_listening(host, port)`` is called once
    the port is bound (port 0 resolved)."""
    holder = reuse_port_socket(settings.host, settings.port)  # held, never listened on
    port = holder.getsockname()[1]
    log.info("serving on %s:%s with %s worker processes (SO_REUSEPORT)", settings.host, port,
             settings.workers)
    if on_listening is not None:
        on_listening(settings.host, int(port))
    try:
        return _Supervisor(settings.replace(port=port)).run()
    finally:
        holder.close()
