"""The app factory: ``create_app(settings) -> FastAPI``.

Route handlers only translate HTTP to calls of the engine, ``embedops.engine.Embedops`` (the API
the CLI calls too) and back; limits, auth, the cache and metrics are the only things added here.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from embedops import __version__
from embedops.serve import errors
from embedops.serve.context import ServiceContext
from embedops.serve.logging import LOGGER
from embedops.serve.metrics import Metrics
from embedops.serve.middleware import RequestContext
from embedops.serve.ratelimit import RateLimiter
from embedops.serve.settings import ServeSettings
from embedops.serve.warmup import index_stats, resume_rollouts, warm_up

if TYPE_CHECKING:
    from embedops.engine import Embedops

log = logging.getLogger(LOGGER)

_DESCRIPTION = """Embeddings in production: embed text, query static word vectors, manage
collections and items, search (dense, lexical, hybrid, two-stage), and watch index health.

Authenticate with `Authorization: Bearer <key>` or `X-API-Key: <key>`; keys have the role
read, write or admin (`embedops keys create --role R`). Every error is
`{"error": {"code", "message"}}`; every answer names the model version that served it (field
`model_version` and header `X-Model-Version`).

OpenAI-compatible: `POST /v1/embeddings` and `GET /v1/models` speak OpenAI's shapes and answer
errors in OpenAI's envelope `{"error": {"message", "type", "param", "code"}}`, so the `openai`
SDK and the clients built on it work with `base_url=http://host:port/v1`."""


def create_app(settings: ServeSettings | None = None, api: Embedops | None = None) -> FastAPI:
    """A ready-to-serve app. ``api`` (an ``Embedops``) is built from ``settings.home`` if None."""
    settings = settings or ServeSettings()
    ctx = ServiceContext.build(settings, api)
    ctx.attach(Metrics(ctx.cache, lambda: index_stats(ctx)))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.auth:
            log.warning("authentication is OFF (--no-auth): every caller is admin")
        if settings.warmup:
            # In a thread, so /healthz answers while indexes load; /readyz waits for it.
            threading.Thread(target=warm_up, args=(ctx,), name="warmup", daemon=True).start()
        else:
            ctx.ready = True
        # A rollout whose backfill this server ran before a restart goes on at once.
        threading.Thread(target=resume_rollouts, args=(app,), name="rollout-resume",
                         daemon=True).start()
        yield

    # Swagger UI (/docs) and ReDoc (/redoc) load their JS and CSS from the installed
    # fastapi-offline package (under /static-offline-docs), never from a CDN: they work offline.
    app = FastAPIOffline(
        title="embedops",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url="/redoc",
        openapi_url="/openapi.json",
    )
    app.state.ctx = ctx
    app.state.ratelimit = RateLimiter.from_settings(settings)
    errors.install(app)
    _include_routes(app)
    app.add_middleware(
        RequestContext,
        max_body_bytes=settings.max_body_bytes,
        metrics=ctx.metrics,
        logger=log,
        body_timeout_s=settings.body_timeout_s,
    )
    return app


def _include_routes(app: FastAPI) -> None:
    from embedops.serve import (
        routes_collections,
        routes_embed,
        routes_feedback,
        routes_health,
        routes_index,
        routes_migrate,
        routes_monitor,
        routes_openai,
        routes_rollout,
        routes_search,
        routes_usecases,
        routes_words,
    )

    # Search first: routes are matched in order, and it is the hot path (no other route can
    # match its path, so the order changes nothing else).
    app.include_router(routes_search.router)
    for module in (
        routes_health,
        routes_openai,
        routes_embed,
        routes_words,
        routes_collections,
        routes_index,
        routes_rollout,
        routes_migrate,
        routes_monitor,
        routes_feedback,
        routes_usecases,
    ):
        app.include_router(module.router)
    # The web console at /ui (serve/console): HTML pages over the same engine, keys and roles,
    # added on its first request (its templates and 20 routes are a sixth of the start-up).
    app.router.routes.append(_LazyConsole(app).route)


class _LazyConsole:
    """A stand-in route for every ``/ui`` path: the first request it matches replaces it with
    the console's routes (at the same place: last) and is dispatched again to them, so every
    request is answered exactly as if they had been there from the start."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.route = Route("/ui{rest:path}", self, include_in_schema=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        routes = self.app.router.routes
        if self.route in routes:  # no await before the swap: one request makes it
            from embedops.serve.console import router as console

            routes.remove(self.route)
            self.app.include_router(console)
        await self.app.router(scope, receive, send)
