"""Helpers for the console tests: a small real workspace with everything the pages show (two
static model versions in one lineage, an indexed collection, a canary rollout, golden runs,
drift reports), keys of each role, a signed-in httpx client, and the browser."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from serve_helpers import lee_documents

from embedops.config import Workspace
from embedops.engine import Embedops
from embedops.lifecycle import GateConfig, Rollouts
from embedops.models.registry import Registry
from embedops.monitor.checks import collection_drift
from embedops.monitor.db import MonitorDB
from embedops.monitor.golden import make_query, run_golden
from embedops.serve.keys import KeyStore

CHROMIUM = "/usr/bin/chromium"
DOCS = lee_documents(120)


def publish_models(ws: Workspace) -> None:
    """lee@1: word2vec (dim 24) on gensim's Lee corpus; lee@2: the same vectors slightly
    perturbed, published with lee@1 as its parent (one training, two versions)."""
    from gensim.models import Word2Vec
    from gensim.test.utils import datapath

    from embedops.models.static import StaticVectors, publish_static
    from embedops.text.tokenize import TokenizerSpec

    spec = TokenizerSpec()
    lines = Path(datapath("lee_background.cor")).read_text(encoding="utf-8").splitlines()
    model = Word2Vec([spec.tokenize(x) for x in lines], vector_size=24, min_count=3, epochs=8,
                     workers=1, seed=1)
    registry = Registry(ws)
    publish_static(registry, "lee", StaticVectors.from_gensim(model.wv), kind="word2vec",
                   spec=spec)
    noise = np.random.default_rng(0).normal(0, 0.15, model.wv.vectors.shape)
    model.wv.vectors = (model.wv.vectors + noise * np.abs(model.wv.vectors).mean()).astype(
        np.float32)
    publish_static(registry, "lee", StaticVectors.from_gensim(model.wv), kind="word2vec",
                   spec=spec, parent="lee@1")


def build_workspace(root: Path) -> tuple[Workspace, dict[str, str]]:
    """The console's test workspace and a key of each role."""
    ws = Workspace(root / "ws").ensure()
    publish_models(ws)
    with Embedops(ws) as api:
        for name in ("docs", "canary"):
            api.collections.create(name, model="lee@1")
            api.upsert_items(name, DOCS)
            api.build_index(name, "hnsw", quiet=True)
        rollouts = Rollouts(api, who="test")
        rollouts.start("canary", "lee@2", share=0.5, gates=GateConfig(min_requests=100))
        rollouts.run_backfill("canary", quiet=True)
        _monitoring(api, MonitorDB(ws))
    keys = KeyStore(ws)
    return ws, {role: keys.create(role)[0] for role in ("read", "write", "admin")}


def _monitoring(api: Embedops, db: MonitorDB) -> None:
    """A golden set with a few runs per version, and two drift reports."""
    db.create_set("faq", "docs", "first words of Lee documents")
    db.add_queries("faq", [make_query(" ".join(d["text"].split()[:8]), [d["id"]])
                           for d in DOCS[:30]])
    for _ in range(3):
        run_golden(api, db, "docs", "faq", (1, 10), quiet=True)
    for version in ("lee@1", "lee@2"):
        run_golden(api, db, "canary", "faq", (10,), model_version=version, quiet=True)
    texts = [d["text"] for d in DOCS]
    collection_drift(api, "docs", texts[:60], texts[60:], db=db)
    collection_drift(api, "docs", texts[:60], [t.upper()[::-1] for t in texts[60:]], db=db)


def csrf_of(html: str) -> str:
    """The CSRF token a console page's forms carry."""
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


@contextmanager
def signed_in(base: str, key: str) -> Iterator[httpx.Client]:
    """An httpx client with a console session for ``key`` (through the login form)."""
    with httpx.Client(base_url=base, timeout=60, follow_redirects=False) as client:
        form = client.get("/ui/login")
        resp = client.post("/ui/login", data={"csrf": csrf_of(form.text), "key": key,
                                              "next": "/ui/overview"})
        assert resp.status_code == 303, resp.text
        yield client


def browser_or_skip() -> Any:
    """Playwright's sync API, or a skip that says what is missing. Playwright never downloads
    a browser here: the tests drive Debian's chromium (``make browser`` installs it)."""
    import pytest

    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        pytest.skip("Debian's chromium is not installed and could not be: run 'make browser' "
                    "(apt-get install chromium) to run the console's browser tests")
    playwright = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
    return playwright


def artifacts_dir(tmp_path_factory: Any) -> Path:
    """Where the screenshots go: ``$EMBEDOPS_ARTIFACTS/console`` or a pytest tmp folder."""
    root = os.environ.get("EMBEDOPS_ARTIFACTS")
    path = Path(root) / "console" if root else tmp_path_factory.mktemp("artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path
