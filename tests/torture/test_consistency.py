"""Catalog and served index diverge: the catalog loses committed items (its write-ahead log is
lost, or an older copy is restored) after an index was built from them (issue 21, items 3/6).

Before: the snapshot still served the lost items, so searches silently returned fewer than k
hits, and status/verify reported nothing. Now the divergence is reported by status, verify and
``check_index``, and a load rebuilds the index from the catalog.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from torture_helpers import publish_tiny, texts

from embedops.config import Workspace
from embedops.engine import Embedops
from embedops.serve.app import create_app
from embedops.serve.settings import ServeSettings
from embedops.serve.warmup import CONSISTENCY_ENV, check_consistency, warm_up

K = 20


def _lose_wal(tmp_path: Path) -> Workspace:
    """20 items checkpointed and copied aside; 20 more committed and indexed; then the older
    copy is restored without its write-ahead log (the 20 later items are gone)."""
    ws = publish_tiny(tmp_path / "ws")
    with Embedops(ws) as api:
        api.collections.create("docs", model="tiny")
        api.upsert_items("docs", [{"id": f"a{i}", "text": t} for i, t in enumerate(texts(20, 1))])
    shutil.copy(ws.catalog_path, tmp_path / "old.db")  # closed: the WAL is checkpointed
    with Embedops(ws) as api:
        api.upsert_items("docs", [{"id": f"b{i}", "text": t} for i, t in enumerate(texts(20, 2))])
        api.build_index("docs")
    for suffix in ("-wal", "-shm"):
        Path(f"{ws.catalog_path}{suffix}").unlink(missing_ok=True)
    shutil.copy(tmp_path / "old.db", ws.catalog_path)
    return ws


def test_search_returns_k_hits_after_the_catalog_lost_items(tmp_path: Path) -> None:
    ws = _lose_wal(tmp_path)
    with Embedops(ws) as api:
        for query in ("apple banana cherry", "moss fern vine", "peach pear plum"):
            hits = api.search("docs", query, k=K).hits
            assert len(hits) == K and all(h.id.startswith("a") for h in hits)


def test_lost_items_are_reported_then_repaired_on_load(tmp_path: Path) -> None:
    ws = _lose_wal(tmp_path)
    with Embedops(ws) as api:
        assert api.count("docs") == 20
        status = api.index_status("docs")["consistency"]
        assert status["state"] == "diverged"
        assert (status["index_only"], status["catalog_only"]) == (20, 0)
        assert status["checksum"] != status["catalog_checksum"]
        catalog = [c for c in api.verify_index("docs") if c.name == "catalog"]
        assert len(catalog) == 1 and not catalog[0].ok
        assert "20 item(s) the catalog does not have" in catalog[0].problems[0]
        hits = api.search("docs", "apple banana cherry", k=K).hits
        assert len(hits) == K and all(h.id.startswith("a") for h in hits)
        after = api.index_status("docs")
        assert after["consistency"]["state"] == "consistent"
        assert after["consistency"]["repaired"]["index_only"] == 20
        assert after["load"]["rebuilt"] == "diverged from the catalog"
        assert [c.ok for c in api.verify_index("docs")].count(False) == 0


def test_on_demand_check_repairs_a_served_index(tmp_path: Path) -> None:
    ws = _lose_wal(tmp_path)
    with Embedops(ws) as api:
        before = api.check_index("docs")
        assert before is not None and before["state"] == "diverged"
        fixed = api.check_index("docs", repair=True)
        assert fixed is not None and fixed["state"] == "consistent"
        assert fixed["repaired"]["index_only"] == 20
        assert len(api.search("docs", "moss fern vine", k=K).hits) == K


def test_items_the_index_lacks_are_reported(tmp_path: Path) -> None:
    """The other direction: the catalog holds items, older than the build, that the index
    lacks (a catalog restored from a newer copy, a clock set back)."""
    ws = publish_tiny(tmp_path / "ws")
    with Embedops(ws) as api:
        api.collections.create("docs", model="tiny")
        api.upsert_items("docs", [{"id": f"a{i}", "text": t} for i, t in enumerate(texts(20, 1))])
        api.build_index("docs")
        api.upsert_items("docs", [{"id": f"b{i}", "text": t} for i, t in enumerate(texts(5, 3))])
    with sqlite3.connect(ws.catalog_path) as conn:
        conn.execute("UPDATE items SET updated_at = 1.0 WHERE item_id LIKE 'b%'")
    conn.close()
    with Embedops(ws) as api:
        status = api.index_status("docs")["consistency"]
        assert (status["state"], status["index_only"], status["catalog_only"]) == (
            "diverged", 0, 5)
        assert len(api.search("docs", "apple", k=25).hits) == 25  # loaded: rebuilt
        assert api.index_status("docs")["consistency"]["state"] == "consistent"


# -- the server: metrics, readiness, the warm-up log and the schedule --------------------------
def _fields(records: list[logging.LogRecord], collection: str) -> list[dict[str, Any]]:
    out = [getattr(r, "fields", None) for r in records if r.levelno >= logging.WARNING]
    return [f for f in out if isinstance(f, dict) and f.get("collection") == collection]


def test_the_server_reports_repairs_and_logs_a_divergence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(CONSISTENCY_ENV, "0")
    ws = _lose_wal(tmp_path)
    app = create_app(ServeSettings(home=str(ws.home), auth=False, warmup=False))
    with TestClient(app) as client:
        text = client.get("/metrics").text
        assert 'embedops_index_consistent{collection="docs"} 0.0' in text
        assert 'embedops_index_divergent_items{collection="docs",side="index_only"} 20.0' in text
        with caplog.at_level(logging.WARNING, logger="embedops.serve"):
            warm_up(app.state.ctx)
        ready = client.get("/readyz")
        assert ready.status_code == 200
        docs = ready.json()["collections"]["docs"]
        assert docs["consistency"]["repaired"]["index_only"] == 20
        assert docs["load"]["rebuilt"] == "diverged from the catalog"
        assert _fields(caplog.records, "docs")
        assert 'embedops_index_consistent{collection="docs"} 1.0' in client.get("/metrics").text
        # later, the catalog loses items under the running server: the schedule repairs it
        with sqlite3.connect(ws.catalog_path) as conn:
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("DELETE FROM items WHERE item_id IN ('a1', 'a2')")
        conn.close()
        check_consistency(app.state.ctx)
        docs = client.get("/readyz").json()["collections"]["docs"]
        assert docs["consistency"]["state"] == "consistent"
        assert docs["consistency"]["repaired"]["index_only"] == 2


def test_quarantine_at_start_is_logged_and_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(CONSISTENCY_ENV, "0")
    ws = publish_tiny(tmp_path / "ws")
    with Embedops(ws) as api:
        api.collections.create("docs", model="tiny")
        api.upsert_items("docs", [{"id": f"a{i}", "text": t} for i, t in enumerate(texts(20, 1))])
        name = api.build_index("docs")["name"]
    damaged = next(ws.snapshot_root("docs", "tiny@1").glob(f"{name}/index/*.faiss"))
    damaged.write_bytes(damaged.read_bytes()[:-7])
    app = create_app(ServeSettings(home=str(ws.home), auth=False, warmup=False))
    with TestClient(app) as client, caplog.at_level(logging.WARNING, logger="embedops.serve"):
        warm_up(app.state.ctx)
        docs = client.get("/readyz").json()["collections"]["docs"]
    assert docs["state"] == "ready" and docs["load"]["quarantined"] == [name]
    assert docs["load"]["rebuilt"] == "no good snapshot"
    logged = _fields(caplog.records, "docs")
    assert logged and logged[0]["load"]["quarantined"] == [name]
