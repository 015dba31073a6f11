"""The server's hardening (issue 21, items 6 and 9): /metrics needs a key unless public,
--no-auth only on loopback, slow headers and bodies cut off, every error status in the OpenAPI
document, and a rollout backfill resumed when the server starts again."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serve_helpers import free_port, wait_until

from embedops.cli.main import main
from embedops.cli.serve_cmd import is_loopback
from embedops.config import Workspace
from embedops.engine import Embedops
from embedops.lifecycle.manager import Rollouts
from embedops.lifecycle.rollout import BACKFILLING, RolloutStore
from embedops.models.registry import Registry
from embedops.models.static import StaticVectors, publish_static
from embedops.serve.app import create_app
from embedops.serve.keys import KeyStore
from embedops.serve.settings import ServeSettings
from embedops.text.tokenize import TokenizerSpec

WORDS = "apple banana cherry grape lemon mango melon olive peach pear plum berry".split()


def _tiny(ws: Workspace, name: str, dim: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    table = StaticVectors(WORDS, rng.standard_normal((len(WORDS), dim)).astype(np.float32))
    publish_static(Registry(ws), name, table, kind="word2vec", spec=TokenizerSpec())


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    ws = Workspace(tmp_path / "ws").ensure()
    _tiny(ws, "tiny", 8, 1)
    return ws


# -- /metrics ----------------------------------------------------------------------------------
def test_metrics_need_a_read_key_unless_public(ws: Workspace) -> None:
    key, _ = KeyStore(ws).create("read", "scraper")
    app = create_app(ServeSettings(home=str(ws.home), warmup=False))
    with TestClient(app) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"X-API-Key": "eok_bad_key"}).status_code == 401
        ok = client.get("/metrics", headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200 and "embedops_cache_entries" in ok.text
    public = create_app(ServeSettings(home=str(ws.home), warmup=False, public_metrics=True))
    with TestClient(public) as client:
        assert client.get("/metrics").status_code == 200


# -- --no-auth ---------------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "example.org", ""])
def test_no_auth_is_refused_off_loopback(ws: Workspace, host: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--host", host, "--no-auth"]) == 2
    err = capsys.readouterr().err
    assert "--no-auth" in err and "loopback" in err


def test_loopback_hosts() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "", "192.168.1.1", "local"))


# -- slow clients ------------------------------------------------------------------------------
def _serve(app: Any, header_timeout: float) -> tuple[Any, int]:
    import uvicorn
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from embedops.serve.timeouts import header_protocol

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False,
                            http=header_protocol(HttpToolsProtocol, header_timeout))
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    wait_until(lambda: server.started, what="server start")
    return server, port


def _read_all(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    started, data = time.monotonic(), b""
    sock.settimeout(limit)
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data, time.monotonic() - started
        data += chunk


def test_slow_headers_and_slow_bodies_are_cut_off(ws: Workspace) -> None:
    app = create_app(ServeSettings(home=str(ws.home), auth=False, warmup=False,
                                   body_timeout_s=1.0))
    server, port = _serve(app, header_timeout=1.0)
    try:
        with socket.create_connection(("127.0.0.1", port)) as sock:  # headers never finish
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            data, took = _read_all(sock, 10)
        assert data.startswith(b"HTTP/1.1 408") and took < 5
        with socket.create_connection(("127.0.0.1", port)) as sock:  # a body that trickles
            sock.sendall(b"POST /v1/embed HTTP/1.1\r\nHost: x\r\ncontent-type: application/json"
                         b"\r\ncontent-length: 400\r\n\r\n{\"texts\": [")
            data, took = _read_all(sock, 10)
        assert data.startswith(b"HTTP/1.1 408") and b"connection: close" in data.lower()
        assert took < 5
        with socket.create_connection(("127.0.0.1", port)) as sock:  # a quick client is fine
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data, _ = _read_all(sock, 10)
        assert data.startswith(b"HTTP/1.1 200")
    finally:
        server.should_exit = True


@pytest.mark.parametrize("protocol", ["httptools", "h11"])
def test_requests_the_http_parser_refuses_get_a_json_400(ws: Workspace, protocol: str) -> None:
    import json as _json

    import uvicorn
    from uvicorn.protocols.http.h11_impl import H11Protocol
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from embedops.serve.timeouts import header_protocol

    base = HttpToolsProtocol if protocol == "httptools" else H11Protocol
    app = create_app(ServeSettings(home=str(ws.home), auth=False, warmup=False))
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                            access_log=False, http=header_protocol(base, 5.0))
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    wait_until(lambda: server.started, what="server start")
    try:
        for raw in (b"GET /v1/coll ections HTTP/1.1\r\nHost: x\r\n\r\n",  # space in the path
                    b"GET /healthz HTTP/1.1\r\nBad Header\x01: v\r\n\r\n"):
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(raw)
                data, _ = _read_all(sock, 10)
            head, _, body = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 400") and b"application/json" in head, data
            error = _json.loads(body)["error"]
            assert error["code"] == "bad_request" and "not valid HTTP/1.1" in error["message"]
    finally:
        server.should_exit = True


def test_make_server_bounds_headers(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    from embedops.serve import logging as serve_logging
    from embedops.serve import server as serve_server

    monkeypatch.setattr(serve_logging, "setup", lambda *a, **k: None)
    monkeypatch.setenv(serve_server.SETTINGS_ENV, "{}")
    settings = ServeSettings(home=str(ws.home), warmup=False, header_timeout_s=3.0)
    server = serve_server.make_server(settings)
    assert server.config.http.__name__.startswith("HeaderDeadline")
    assert server.config.timeout_keep_alive == serve_server.KEEP_ALIVE_S


# -- OpenAPI -----------------------------------------------------------------------------------
_UNAUTHENTICATED = ("/healthz", "/readyz", "/v1/embeddings", "/v1/models")


def test_openapi_lists_every_error_status(ws: Workspace) -> None:
    spec = create_app(ServeSettings(home=str(ws.home), warmup=False)).openapi()
    missing = []
    for path, methods in spec["paths"].items():
        if path in _UNAUTHENTICATED or path.startswith(("/v1/models/", "/v1/embeddings")):
            continue
        for method, op in methods.items():
            codes = set(op["responses"])
            want = {"401", "403"} | ({"422"} if op.get("parameters") or
                                     op.get("requestBody") else set())
            if "{name}" in path or "{set_name}" in path or "{ref}" in path:
                want.add("404")
            if op.get("requestBody"):
                want |= {"400", "408", "413"}
            missing += [f"{method.upper()} {path}: {c}" for c in sorted(want - codes)]
    assert missing == []


# -- rollouts ----------------------------------------------------------------------------------
def test_a_pending_rollout_backfill_resumes_when_the_server_starts(ws: Workspace) -> None:
    _tiny(ws, "tiny2", 8, 2)
    with Embedops(ws) as api:
        api.collections.create("docs", model="tiny")
        api.upsert_items("docs", [{"id": f"d{i}", "text": f"{WORDS[i]} {WORDS[-i]}"}
                                  for i in range(12)])
        api.build_index("docs")
        Rollouts(api, "test").start("docs", "tiny2")  # the server that ran it then stopped
    store = RolloutStore(ws)
    assert store.require("docs").phase == BACKFILLING
    app = create_app(ServeSettings(home=str(ws.home), auth=False, warmup=False))
    with TestClient(app):
        wait_until(lambda: store.require("docs").phase != BACKFILLING, timeout=30,
                   what="the backfill resumed and finished")
    with Embedops(ws) as api:
        assert api.missing_vectors("docs", "tiny2@1") == []
