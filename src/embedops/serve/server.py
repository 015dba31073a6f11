"""Run the app under uvicorn with JSON logs and a graceful shutdown.

On SIGTERM/SIGINT uvicorn stops accepting connections and lets requests in flight finish for up
to ``graceful_timeout_s`` seconds before it closes them. A client must send a request's headers
within ``header_timeout_s`` and its body within ``body_timeout_s`` (``serve.timeouts``); an idle
keep-alive connection is closed after ``KEEP_ALIVE_S``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
from collections.abc import Callable
from typing import Any

from embedops.serve.logging import LOGGER
from embedops.serve.settings import ServeSettings

SETTINGS_ENV = "EMBEDOPS_SERVE_SETTINGS"
KEEP_ALIVE_S = 5


def app_from_env() -> Any:
    """The app factory of worker processes (settings as JSON in ``$EMBEDOPS_SERVE_SETTINGS``)."""
    from embedops.serve.app import create_app
    from embedops.serve.logging import setup

    settings = ServeSettings(**json.loads(os.environ[SETTINGS_ENV]))
    setup(settings.log_level)
    sys.setswitchinterval(0.0005)
    _one_thread_per_query()
    return create_app(settings)


def _one_thread_per_query() -> None:
    """Requests already run concurrently in a thread pool; FAISS's OpenMP threads inside each
    query would oversubscribe the cores (and spin-wait), so each query uses one thread."""
    try:
        import faiss
    except ImportError:  # pragma: no cover - faiss-cpu is a core dependency
        return
    faiss.omp_set_num_threads(1)


def io_implementations() -> tuple[str, str]:
    """(event loop, HTTP parser) for uvicorn: uvloop and httptools (C; both are dependencies of
    embedops) where they import, else asyncio and h11 (pure Python, more CPU per request).
    Named explicitly, and logged at start-up, instead of uvicorn's silent "auto"."""
    loop, http = "asyncio", "h11"
    with contextlib.suppress(ImportError):
        import uvloop  # noqa: F401

        loop = "uvloop"
    with contextlib.suppress(ImportError):
        import httptools  # noqa: F401

        http = "httptools"
    return loop, http


Announce = Callable[[str, int], None]
"""Called once with (host, port) when the server accepts connections (port 0 resolved)."""


def make_server(  # type: ignore[no-untyped-def]
    settings: ServeSettings, on_listening: Announce | None = None
):
    """A configured ``uvicorn.Server`` (not started) serving ``create_app(settings)``; it calls
    ``on_listening(host, port)`` once its socket listens (after the app's start-up)."""
    import uvicorn

    class _Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if on_listening is not None and self.started and self.servers:
                bound = self.servers[0].sockets[0].getsockname()
                on_listening(settings.host, int(bound[1]))

    from embedops.serve.logging import setup

    setup(settings.log_level)
    # Handlers run in a thread pool next to the event loop; with Python's default 5 ms GIL
    # switch interval a request that is ready can wait 5 ms at each hand-over.
    sys.setswitchinterval(0.0005)
    os.environ[SETTINGS_ENV] = json.dumps(settings.to_dict())
    multi = settings.workers > 1
    loop, http = io_implementations()
    logging.getLogger(LOGGER).info("serving with event loop %s and HTTP parser %s", loop, http)
    from uvicorn.importer import import_from_string

    from embedops.serve.timeouts import header_protocol

    protocol = header_protocol(import_from_string(uvicorn.config.HTTP_PROTOCOLS[http]),
                               settings.header_timeout_s)
    config = uvicorn.Config(
        "embedops.serve.server:app_from_env" if multi else app_from_env(),
        factory=multi,
        workers=settings.workers,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=math.ceil(settings.graceful_timeout_s),
        server_header=False,
        lifespan="on",
        loop=loop,
        http=protocol,
        timeout_keep_alive=KEEP_ALIVE_S,
    )
    return _Server(config)


def run(settings: ServeSettings, on_listening: Announce | None = None) -> None:
    """Serve until SIGTERM/SIGINT (blocking). Several workers get a listening socket each where
    the kernel balances them (``serve.workers``), else share one under uvicorn's supervisor.
    ``on_listening(host, port)`` is called once the port is known and taken (with one worker,
    after the app has started; with several, when the port is bound)."""
    if settings.workers > 1:
        from embedops.serve.workers import reuse_port_supported, serve_workers

        if reuse_port_supported():
            status = serve_workers(settings, on_listening)
            if status:
                sys.exit(status)
            return
    server = make_server(settings, on_listening)
    if settings.workers == 1:
        server.run()
        return
    from uvicorn.supervisors import Multiprocess

    sock = server.config.bind_socket()
    if on_listening is not None:
        on_listening(settings.host, int(sock.getsockname()[1]))
    Multiprocess(server.config, sockets=[sock]).run()
