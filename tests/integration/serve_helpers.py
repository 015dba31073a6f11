"""Helpers for the HTTP tests: a tiny real static model, and a real uvicorn on a free port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from embedops.config import Workspace
from embedops.models.registry import ModelVersion, Registry


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def publish_lee_model(workspace: Workspace, name: str = "lee", dim: int = 32,
                      **manifest: Any) -> ModelVersion:
    """word2vec (``dim`` 32) trained on gensim's Lee corpus, published as a static model;
    ``manifest`` adds fields (``parent``, ``eval``) to its manifest."""
    from gensim.models import Word2Vec
    from gensim.test.utils import datapath

    from embedops.models.static import StaticVectors, publish_static
    from embedops.text.tokenize import TokenizerSpec

    spec = TokenizerSpec()
    lines = Path(datapath("lee_background.cor")).read_text(encoding="utf-8").splitlines()
    sentences = [spec.tokenize(line) for line in lines]
    model = Word2Vec(sentences, vector_size=dim, min_count=3, epochs=10, workers=1, seed=1)
    table = StaticVectors.from_gensim(model.wv)
    return publish_static(Registry(workspace), name, table, kind="word2vec", spec=spec,
                          **manifest)


def lee_documents(n: int = 60) -> list[dict[str, Any]]:
    """The first ``n`` Lee documents as items, with a numeric and a string metadata field."""
    from gensim.test.utils import datapath

    lines = Path(datapath("lee_background.cor")).read_text(encoding="utf-8").splitlines()
    return [
        {"id": f"doc{i}", "text": line, "metadata": {"n": i, "half": "a" if i % 2 else "b"}}
        for i, line in enumerate(lines[:n])
    ]


@contextmanager
def running_server(app: Any, ready: bool = True) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread on 127.0.0.1, with the HTTP protocol that
    ``embedops serve`` uses (header deadline, JSON 400 for what the parser refuses); yields the
    base URL."""
    import uvicorn
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from embedops.serve.timeouts import header_protocol

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False,
                            http=header_protocol(HttpToolsProtocol, 30.0))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: server.started, what="server start")
        if ready:
            wait_until(lambda: httpx.get(f"{base}/readyz").status_code == 200, what="ready")
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def wait_until(check: Any, timeout: float = 30.0, what: str = "condition") -> None:
    """Poll ``check()`` until it is true, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
