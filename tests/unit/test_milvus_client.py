"""Milvus connection settings and failures: credentials never in params or messages, the token
from a mounted file, an unreachable server is a 503 ``Unavailable`` (fast after the first)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import pytest

from embedops.errors import InvalidInput, Unavailable
from embedops.index import make_index, make_params
from embedops.index.milvus_client import (
    RETRY_AFTER_S,
    check_uri,
    forget_connections,
    resolve_uri,
    safe_uri,
    token,
)


def test_credentials_stay_out_of_params_and_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    assert safe_uri("https://root:Milvus@db.example:19530") == "https://***@db.example:19530"
    with pytest.raises(InvalidInput, match="EMBEDOPS_MILVUS_TOKEN"):
        check_uri("http://root:secret@localhost:19530")
    with pytest.raises(InvalidInput, match="user or password"):
        make_params("milvus", {"uri": "http://u:p@h:1"})


def test_uri_and_token_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("EMBEDOPS_MILVUS_URI", raising=False)
    monkeypatch.setenv("EMBEDOPS_HOME", str(tmp_path / "ws"))
    assert resolve_uri() == str((tmp_path / "ws" / "milvus.db").resolve())
    monkeypatch.setenv("EMBEDOPS_MILVUS_URI", "http://milvus:19530")
    assert resolve_uri() == "http://milvus:19530" and resolve_uri("http://x:1") == "http://x:1"
    monkeypatch.delenv("EMBEDOPS_MILVUS_TOKEN", raising=False)
    (tmp_path / "token").write_text("root:Milvus\n")
    monkeypatch.setenv("EMBEDOPS_MILVUS_TOKEN_FILE", str(tmp_path / "token"))
    assert token() == "root:Milvus"
    monkeypatch.setenv("EMBEDOPS_MILVUS_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(Unavailable, match="token file"):
        token()


def test_an_unreachable_milvus_is_unavailable_and_then_fails_fast(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("pymilvus")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once the socket is closed
    monkeypatch.setenv("EMBEDOPS_MILVUS_URI", f"http://127.0.0.1:{port}")
    index = make_index("milvus", 4, "cosine", {"timeout_s": 2.0})
    try:
        with pytest.raises(Unavailable) as first:
            index.build(np.eye(4, dtype=np.float32), np.arange(4))
        assert first.value.http_status == 503
        assert f"127.0.0.1:{port}" in first.value.message and "Milvus" in first.value.message
        assert "resumes by itself" in str(first.value)
        started = time.monotonic()
        with pytest.raises(Unavailable):
            index.build(np.eye(4, dtype=np.float32), np.arange(4))
        assert time.monotonic() - started < RETRY_AFTER_S  # no wait on a server known down
        assert index.count == 0 and index.collection is None  # the failed build left nothing
    finally:
        forget_connections()
