"""The web console at ``/ui``: server-rendered pages over the engine and the loop.

Jinja2 templates (autoescaped) and htmx, plots drawn by the bundled plotly.js; every asset
ships in this package (``static/``), nothing comes from a CDN. The pages read only
``Embedops`` and the loop packages (``monitor``, ``lifecycle``) and act through the same
rollout service and monitoring database as the API routes, behind the same keys and roles:
a read key sees every page, a write key adds golden queries, an admin key promotes, rolls
back and aborts rollouts (see ``session`` for sign-in, cookies and CSRF).

Pages: overview, search, words, projection, quality, drift, rollouts, models.
"""

from __future__ import annotations

from fastapi import APIRouter

from embedops.serve.console import (
    pages_auth,
    pages_models,
    pages_monitor,
    pages_overview,
    pages_projection,
    pages_rollouts,
    pages_search,
    pages_words,
)

router = APIRouter(include_in_schema=False)
for _module in (pages_auth, pages_overview, pages_search, pages_words, pages_projection,
                pages_monitor, pages_rollouts, pages_models):
    router.include_router(_module.router, prefix="/ui")

__all__ = ["router"]
