"""The milvus index backend under the engine, on milvus-lite: snapshots as collections behind an
alias (publish, rollback, a failed build), a missing or altered collection (detected, never
served), metadata filters inside Milvus (same answers as embedops' filters, hostile values
included), and a Milvus server stopped under a running HTTP service (503, then recovery)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from serve_helpers import free_port, lee_documents, publish_lee_model, running_server, wait_until

from embedops.api import Embedops
from embedops.config import Workspace
from embedops.errors import IntegrityError, InvalidInput, Unavailable

pytest.importorskip("pymilvus")

from embedops.index import make_index  # noqa: E402
from embedops.index.milvus import MilvusIndex  # noqa: E402
from embedops.index.milvus_client import connection, forget_connections  # noqa: E402
from embedops.index.milvus_filters import to_expr  # noqa: E402
from embedops.index.milvus_params import alias_name  # noqa: E402
from embedops.search.filters import compile_filters  # noqa: E402

DOCS = lee_documents(80)


@pytest.fixture(autouse=True)
def fresh_connections() -> Iterator[None]:
    yield
    forget_connections()


@pytest.fixture
def api(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> Iterator[Embedops]:
    monkeypatch.setenv("EMBEDOPS_MILVUS_URI", str(workspace.home / "milvus.db"))
    publish_lee_model(workspace)
    eo = Embedops(workspace)
    eo.collections.create("lee", model="lee")
    eo.upsert_items("lee", DOCS)
    yield eo
    eo.close()


def _client() -> Any:
    return connection("", 30.0).client()


def _alias_target(eo: Embedops) -> str:
    version = eo.index_version("lee")
    aliases = _client().describe_alias(alias_name("embedops", "lee", version))
    return str(aliases["collection_name"])


def _current_collection(eo: Embedops) -> str:
    return str(eo.served_index("lee").index.describe()["collection"])


def test_build_publishes_a_new_collection_behind_the_alias_and_rollback_moves_it_back(
    api: Embedops,
) -> None:
    first = api.build_index("lee", "milvus", quiet=True)
    one = _current_collection(api)
    assert _alias_target(api) == one and first["count"] == len(DOCS)
    hits = api.search("lee", "police", k=5).hits
    assert len(hits) == 5

    api.delete_items("lee", ["doc0", "doc1"])
    api.build_index("lee", "milvus", {"index_type": "FLAT"}, quiet=True)
    two = _current_collection(api)
    assert two != one and _alias_target(api) == two
    assert api.served_index("lee").index.count == len(DOCS) - 2

    api.rollback_index("lee")
    assert _alias_target(api) == one
    assert _current_collection(api) == one
    assert api.search("lee", "police", k=5).hits  # served again (deletes still filtered out)


def test_a_failed_build_leaves_alias_snapshot_and_search_as_they_were(
    api: Embedops, monkeypatch: pytest.MonkeyPatch,
) -> None:
    api.build_index("lee", "milvus", quiet=True)
    before, snapshots = _alias_target(api), len(api.snapshots("lee").list())
    collections = set(_client().list_collections())

    def broken(self: MilvusIndex, name: str, vecs: Any, ids: Any) -> None:
        raise IntegrityError(f"the Milvus collection {name!r} holds 0 vectors, 80 expected")

    monkeypatch.setattr(MilvusIndex, "_verify_build", broken)
    with pytest.raises(IntegrityError):
        api.build_index("lee", "milvus", quiet=True)
    assert _alias_target(api) == before
    assert len(api.snapshots("lee").list()) == snapshots
    assert set(_client().list_collections()) == collections  # the new one was dropped
    assert api.search("lee", "police", k=3).hits


@pytest.mark.parametrize("damage", ["drop", "alter"])
def test_a_missing_or_altered_collection_is_never_served(
    api: Embedops, workspace: Workspace, damage: str,
) -> None:
    api.build_index("lee", "milvus", quiet=True)
    name, alias = _current_collection(api), alias_name("embedops", "lee", api.index_version("lee"))
    want = [h.id for h in api.search("lee", "police", k=5).hits]
    api.close()
    forget_connections()
    client = _client()
    if damage == "drop":
        client.drop_alias(alias)
        client.drop_collection(name)
    else:
        client.delete(name, ids=[3, 4])
    with Embedops(workspace) as again:  # a new process: loads and verifies the snapshot
        assert [h.id for h in again.search("lee", "police", k=5).hits] == want
        status = again.index_status("lee")
        assert status["load"]["quarantined"], status["load"]
        assert _current_collection(again) != name  # rebuilt from the catalog
        assert again.served_index("lee").index.count == len(DOCS)


def test_alias_of_a_pruned_snapshot_collection_is_released(api: Embedops) -> None:
    names = []
    for _ in range(4):  # the store keeps 3 snapshots
        api.build_index("lee", "milvus", quiet=True)
        names.append(_current_collection(api))
    live = set(_client().list_collections())
    assert names[0] not in live and set(names[1:]) <= live


# --- filters inside Milvus ------------------------------------------------------------------
HOSTILE = ['" or true or "', '\\" or 1 == 1 or \\"', "x\\", 'a"] == 1 or meta["b', "日本 é 🙂",
           "it's", "", "tab\there", "line\nbreak"]
METAS: list[dict[str, Any]] = [
    {"lang": "en", "year": 1990, "flag": True, "s": HOSTILE[0]},
    {"lang": "fr", "year": 2001.5, "flag": False, "s": HOSTILE[1], 'a"] == 1 or meta["b': 1},
    {"lang": "de", "year": 1, "flag": 1, "s": HOSTILE[2], "none": None},
    {"lang": "en", "year": True, "s": HOSTILE[3], "list": [1, 2]},
    {"lang": "es", "year": 2020, "s": HOSTILE[4], "none": 0},
    {"year": "1990", "s": HOSTILE[5], "flag": None},
    {"lang": "EN", "s": HOSTILE[6]},
    {"s": HOSTILE[7], "lang": ["en"]},
    {"s": HOSTILE[8], "year": -5},
    {},
]
FILTERS: list[dict[str, Any]] = [
    {"lang": "en"}, {"lang": {"ne": "en"}}, {"lang": {"in": ["en", "fr", "xx"]}},
    {"year": 1990}, {"year": {"gte": 1990}}, {"year": {"lt": 1990}},
    {"year": {"gt": "1000"}}, {"flag": True}, {"flag": 1}, {"flag": {"ne": True}},
    {"none": None}, {"none": {"ne": None}}, {"list": 1}, {"list": {"ne": 3}},
    {"lang": "en", "year": {"lte": 2000}}, {'a"] == 1 or meta["b': 1},
    {'a"] == 1 or meta["b': {"ne": 2}}, {"missing": {"ne": 1}},
] + [{"s": value} for value in HOSTILE] + [{"s": {"in": HOSTILE[:4]}}, {"s": {"gte": "x"}}]


@pytest.fixture(scope="module")
def filtered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusIndex]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EMBEDOPS_MILVUS_URI", str(tmp_path_factory.mktemp("mf") / "f.db"))
        vectors = np.random.default_rng(0).standard_normal((len(METAS), 8)).astype(np.float32)
        index = make_index("milvus", 8, "cosine", {"index_type": "FLAT"})
        assert isinstance(index, MilvusIndex)
        index.build(vectors, np.arange(len(METAS)), metadata=METAS)
        yield index
    forget_connections()


@pytest.mark.parametrize("spec", FILTERS, ids=[repr(f)[:40] for f in FILTERS])
def test_milvus_filters_match_embedops_filters(filtered: MilvusIndex, spec: dict) -> None:
    filt = compile_filters(spec)
    want = {i for i, meta in enumerate(METAS) if filt.matches(meta)}
    ids, _ = filtered.search(np.ones((1, 8), np.float32), len(METAS), filters=filt)
    assert set(ids[0][ids[0] >= 0].tolist()) == want, to_expr(filt)


def test_filter_values_cannot_inject_and_control_characters_are_refused() -> None:
    expr = to_expr(compile_filters({'k"]': '" or true or "'}))
    assert expr.count('"') == 4 + 2 and '\\" or true or \\"' in expr  # one quoted literal
    assert 'k"]' not in expr  # field names are hashed, never written
    with pytest.raises(InvalidInput, match="control character"):
        to_expr(compile_filters({"s": "bell\x07"}))
    with pytest.raises(InvalidInput, match="finite"):
        to_expr(compile_filters({"n": {"gt": float("nan")}}))


# --- Milvus stopped under a running server --------------------------------------------------
def _milvus_server(data: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(data),
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    import socket

    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("milvus-lite did not start")


@pytest.mark.slow
def test_milvus_down_gives_503_and_the_service_recovers(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from embedops.serve.app import create_app
    from embedops.serve.settings import ServeSettings

    port = free_port()
    monkeypatch.setenv("EMBEDOPS_MILVUS_URI", f"http://127.0.0.1:{port}")
    milvus = _milvus_server(tmp_path / "milvus", port)
    try:
        publish_lee_model(workspace)
        with Embedops(workspace) as eo:
            eo.collections.create("lee", model="lee")
            eo.upsert_items("lee", DOCS)
            eo.build_index("lee", "milvus", {"timeout_s": 5.0}, quiet=True)
        app = create_app(ServeSettings(home=str(workspace.home), auth=False))
        with running_server(app) as base:
            url = f"{base}/v1/collections/lee/search"
            body = {"query": "police", "k": 5}
            ok = httpx.post(url, json=body, timeout=30)
            assert ok.status_code == 200, ok.text
            wait_until(lambda: httpx.get(f"{base}/readyz", timeout=30).status_code == 200,
                       timeout=60, what="readiness")
            milvus.kill()
            milvus.wait()
            for _ in range(3):
                down = httpx.post(url, json=body, timeout=30)
                assert down.status_code == 503, down.text
                message = down.json()["error"]["message"]
                assert "Milvus" in message and "unavailable" in message
            assert Unavailable.http_status == 503
            not_ready = httpx.get(f"{base}/readyz", timeout=30)
            assert not_ready.status_code == 503
            assert not_ready.json()["status"] == "index unreachable"
            assert "lee/lee@1" in not_ready.json()["unreachable"]
            milvus = _milvus_server(tmp_path / "milvus", port)
            wait_until(lambda: httpx.post(url, json=body, timeout=30).status_code == 200,
                       timeout=60, what="recovery after Milvus is back")
            assert httpx.get(f"{base}/readyz", timeout=30).status_code == 200
            again = httpx.post(url, json=body, timeout=30).json()
            assert [h["id"] for h in again["hits"]] == [h["id"] for h in ok.json()["hits"]]
    finally:
        milvus.kill()
        milvus.wait()
