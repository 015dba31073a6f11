"""Run the app under uvicorn with JSON logs and a graceful shutdown.

On SIGTERM/SIGINT uvicorn stops accepting connections and lets requests in flight finish for up
to ``graceful_timeout_s`` seconds before it closes them.
"""

from __future__ import annotations

import math

from embedops.serve.settings import ServeSettings


def make_server(settings: ServeSettings):  # type: ignore[no-untyped-def]
    """A configured ``uvicorn.Server`` (not started) serving ``create_app(settings)``."""
    import uvicorn

    from embedops.serve.app import create_app
    from embedops.serve.logging import setup

    setup(settings.log_level)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=math.ceil(settings.graceful_timeout_s),
        server_header=False,
        lifespan="on",
    )
    return uvicorn.Server(config)


def run(settings: ServeSettings) -> None:
    """Serve until SIGTERM/SIGINT (blocking)."""
    make_server(settings).run()
