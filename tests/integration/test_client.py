"""``embedops.client.Client`` against a real server on 127.0.0.1: the same answers and the same
error classes as the in-process ``Embedops`` on the same workspace, and retries on 429/503
(``Retry-After``) against a tiny stub server."""

from __future__ import annotations

import inspect
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from serve_helpers import free_port, lee_documents, running_server

import embedops.client.client as client_module
from embedops.client import Client
from embedops.config import Workspace
from embedops.engine import Embedops
from embedops.errors import (
    AlreadyExists,
    CollectionNotFound,
    EmbedopsError,
    Forbidden,
    InvalidInput,
    LimitExceeded,
    ModelNotFound,
    NotFound,
    Unauthorized,
    Unavailable,
)
from embedops.lifecycle.rollout import RolloutNotFound
from embedops.models.registry import Registry
from embedops.models.static import StaticVectors, publish_static
from embedops.search.models import SearchResponse
from embedops.serve.app import create_app
from embedops.serve.keys import KeyStore
from embedops.serve.settings import ServeSettings
from embedops.store.models import CollectionInfo
from embedops.text.tokenize import TokenizerSpec

DOCS = lee_documents(40)


def publish_tiny(ws: Workspace, corpus: Path, name: str = "tiny", dim: int = 16,
                 seed: int = 0) -> str:
    """A static model over the corpus vocabulary with seeded random vectors (fast to build)."""
    spec = TokenizerSpec()
    vocab = sorted({t for line in corpus.read_text().splitlines() for t in spec.tokenize(line)})
    vectors = np.random.default_rng(seed).standard_normal((len(vocab), dim)).astype(np.float32)
    return publish_static(Registry(ws), name, StaticVectors(vocab, vectors), kind="static",
                          spec=spec).ref


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, lee_corpus: Path) -> Iterator[dict[str, Any]]:
    ws = Workspace(tmp_path_factory.mktemp("client") / "ws").ensure()
    publish_tiny(ws, lee_corpus)
    publish_tiny(ws, lee_corpus, "tiny2", seed=1)
    keys = KeyStore(ws)
    tokens = {role: keys.create(role)[0] for role in ("read", "write", "admin")}
    settings = ServeSettings(home=str(ws.home), max_batch=100, max_k=100,
                             max_body_bytes=64 * 1024)
    with running_server(create_app(settings)) as base, Embedops(ws) as local:
        clients = {role: Client(base, api_key=key, timeout=30) for role, key in tokens.items()}
        admin, write = clients["admin"], clients["write"]
        info = admin.collections.create("lee", "tiny")
        assert isinstance(info, CollectionInfo) and info.model_version == "tiny@1"
        assert write.upsert_items("lee", DOCS) == {"received": 40, "written": 40,
                                                   "unchanged": 0}
        yield {"base": base, "local": local, **clients}
        for client in clients.values():
            client.close()


def test_collections_match_the_engine(served: dict[str, Any]) -> None:
    admin, local = served["admin"], served["local"]
    assert admin.collections.list() == local.collections.list()
    assert admin.collections.info("lee") == local.collections.info("lee")
    assert admin.count("lee") == local.count("lee") == 40
    assert admin.collections.show("lee")["item_count"] == 40
    assert admin.collections.get_or_create("lee", "tiny").name == "lee"
    made = admin.collections.create("scratch", "tiny2", metric="ip")
    assert (made.metric, made.dim) == ("ip", 16)
    gone = admin.collections.delete("scratch")
    assert gone.name == "scratch"
    assert [c.name for c in admin.collections.list()] == ["lee"]


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid", "two_stage"])
def test_search_matches_the_engine(served: dict[str, Any], mode: str) -> None:
    read, local = served["read"], served["local"]
    query, filters = DOCS[3]["text"][:80], {"n": {"lt": 30}, "half": {"in": ["a", "b"]}}
    remote = read.search("lee", query, k=5, mode=mode, filters=filters)
    here = local.search("lee", query, k=5, mode=mode, filters=filters)
    assert isinstance(remote, SearchResponse) and remote.mode == mode
    assert [h.id for h in remote.hits] == [h.id for h in here.hits] and remote.hits
    assert [h.metadata for h in remote.hits] == [h.metadata for h in here.hits]
    assert np.allclose([h.score for h in remote.hits], [h.score for h in here.hits], atol=1e-5)
    assert all(h.metadata["n"] < 30 for h in remote.hits)


def test_vector_search_params_and_embed(served: dict[str, Any]) -> None:
    read, local = served["read"], served["local"]
    texts = [DOCS[0]["text"], "a brand new sentence about fires"]
    remote = read.embed(texts, model="tiny")
    here = local.embed(texts, model="tiny")
    assert remote.dtype == np.float32 and remote.shape == here.shape == (2, 16)
    cosine = (remote * here).sum(1) / np.linalg.norm(remote, axis=1) / np.linalg.norm(here, axis=1)
    assert cosine.min() >= 0.9999
    hits = read.search("lee", vector=remote[0], k=3).hits
    assert hits[0].id == "doc0"
    with pytest.raises(InvalidInput, match="flat"):  # search_params reach the index
        read.search("lee", vector=remote[0], k=3, search_params={"ef_search": 8})


def test_words_match_the_engine(served: dict[str, Any]) -> None:
    read, local = served["read"], served["local"]
    got = read.neighbours("tiny", "fire", k=3)
    want = local.neighbours("tiny", "fire", k=3)
    assert [w for w, _ in got] == [w for w, _ in want]
    assert read.similarity("tiny", "fire", "police") == pytest.approx(
        local.similarity("tiny", "fire", "police"), abs=1e-6)
    analogy = read.analogy("tiny", "man", "king", "woman", k=2)
    assert [w for w, _ in analogy] == [w for w, _ in local.analogy("tiny", "man", "king",
                                                                   "woman", k=2)]
    with pytest.raises(InvalidInput):
        read.analogy("tiny", "a", "b", "c", method="3cosmul")


def test_items_and_index_lifecycle(served: dict[str, Any]) -> None:
    admin, write, read = served["admin"], served["write"], served["read"]
    extra = [{"id": "x1", "text": "bushfires near sydney", "lang": "en"}]
    assert write.upsert_items("lee", extra)["written"] == 1
    hit = read.search("lee", "bushfires near sydney", k=1, filters={"lang": "en"}).hits[0]
    assert (hit.id, hit.metadata) == ("x1", {"lang": "en"})
    assert write.delete_items("lee", ["x1", "nope"]) == 1
    built = admin.build_index("lee", kind="flat")
    assert built["model_version"] == "tiny@1"
    status = admin.index_status("lee")
    assert status["model_version"] == "tiny@1" and status["snapshot"]["kind"] == "flat"
    assert write.verify_index("lee") is not None
    admin.build_index("lee", kind="hnsw")
    assert admin.rollback_index("lee")["model_version"] == "tiny@1"
    assert admin.index_status("lee")["snapshot"]["kind"] == "flat"


def test_items_by_id_and_by_filter_match_the_engine(served: dict[str, Any],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    read, local = served["read"], served["local"]
    ids = ["doc7", "nope", "doc2", "doc7"]
    got = read.get_items("lee", ids)
    assert [it.id for it in got] == ["doc7", "doc2", "doc7"]
    assert got == local.get_items("lee", ids)  # the same Items: hash and timestamps too
    # more ids than one request takes (1,000 ids and about 8 KB of query string each)
    many = [f"unknown-{'x' * 40}-{i}" for i in range(1500)] + ["doc3"]
    assert [it.id for it in read.get_items("lee", many)] == ["doc3"]
    assert read.get_items("lee", []) == []
    for asked in ([], ["doc1"]):
        with pytest.raises(CollectionNotFound):
            read.get_items("nope", asked)
    with pytest.raises(InvalidInput, match="list of strings"):
        read.get_items("lee", "doc1")
    filters = {"half": "a", "n": {"lt": 30}}
    matching = read.ids_where("lee", filters)
    assert matching == local.ids_where("lee", filters) and len(matching) == 15
    monkeypatch.setattr(client_module, "WHERE_PAGE", 7)  # 40 ids read in pages of 7
    assert read.ids_where("lee") == local.ids_where("lee") and len(read.ids_where("lee")) == 40
    with pytest.raises(InvalidInput):
        read.ids_where("lee", {"n": {"near": 1}})


def test_shared_methods_take_the_engines_parameters() -> None:
    """Where Client and Embedops share a method, the client takes the engine's parameters:
    the same names in the same order (the engine may take more after them)."""
    shared = sorted(name for name, member in vars(Client).items()
                    if not name.startswith("_") and callable(member)
                    and callable(getattr(Embedops, name, None)))
    assert {"search", "get_items", "ids_where", "upsert_items", "embed", "count"} <= set(shared)
    for name in shared:
        mine = list(inspect.signature(getattr(Client, name)).parameters)
        engine = list(inspect.signature(getattr(Embedops, name)).parameters)
        assert engine[:len(mine)] == mine, f"{name}: client {mine}, engine {engine}"


def test_golden_drift_and_rollout(served: dict[str, Any]) -> None:
    admin, write, read = served["admin"], served["write"], served["read"]
    made = write.golden.create("g1", collection="lee", description="smoke")
    assert made["name"] == "g1"
    queries = [{"query": d["text"][:60], "relevant": [d["id"]]} for d in DOCS[:3]]
    assert write.golden.add("g1", queries) == 3
    run = write.golden.run("g1", "lee", k=[1, 5])
    assert (run["set"], run["collection"], run["n_queries"]) == ("g1", "lee", 3)
    assert run["scores"]
    assert [s["name"] for s in read.golden.list()] == ["g1"]
    assert len(read.golden.history("g1", collection="lee")) == 1
    with pytest.raises(AlreadyExists):
        write.golden.create("g1")
    texts = [d["text"] for d in DOCS]
    report = write.drift("lee", {"texts": texts[:20]}, {"texts": texts[20:]})
    assert report["collection"] == "lee" and report["model_version"] == "tiny@1"
    with pytest.raises(RolloutNotFound):
        admin.rollout.status("lee")
    started = admin.rollout.start("lee", "tiny2", share=0.5)
    assert started["candidate"] == "tiny2@1"
    assert admin.rollout.status("lee")["candidate"] == "tiny2@1"
    assert admin.rollout.abort("lee", reason="test")["phase"] == "aborted"


def test_errors_are_the_engine_classes(served: dict[str, Any]) -> None:
    read, write, base = served["read"], served["write"], served["base"]
    with pytest.raises(CollectionNotFound) as missing:
        read.search("nope", "fox")
    assert missing.value.http_status == 404 and "nope" in str(missing.value)
    with pytest.raises(ModelNotFound):
        read.embed(["fox"], model="missing")
    with Client(base, api_key="") as anonymous, pytest.raises(Unauthorized):
        anonymous.collections.list()
    with Client(base, api_key="eok_000000000000_" + "a" * 43) as wrong, \
            pytest.raises(Unauthorized):
        wrong.collections.list()
    with pytest.raises(Forbidden):
        write.collections.create("other", "tiny")
    with pytest.raises(InvalidInput) as invalid:
        read.search("lee", "fox", mode="sideways")
    assert invalid.value.http_status == 422
    with pytest.raises(LimitExceeded):
        read.search("lee", "fox", k=500)  # the server's max_k is 100
    with pytest.raises(LimitExceeded) as too_big:
        write.upsert_items("lee", [{"id": "big", "text": "word " * 20_000}])  # > body limit
    assert too_big.value.http_status == 413
    with pytest.raises(NotFound):
        read.neighbours("tiny", "zzzzqqqq")


class _Stub(BaseHTTPRequestHandler):
    """Answers each request with the next (status, headers, body) of the server's script."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        server: Any = self.server
        server.seen.append(time.monotonic())
        status, headers, body = server.script.pop(0) if server.script else server.last
        data = json.dumps(body).encode()
        self.send_response(status)
        for key, value in {**headers, "Content-Type": "application/json",
                           "Content-Length": str(len(data))}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[Any]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Stub)
    server.seen, server.script = [], []  # type: ignore[attr-defined]
    server.last = (200, {}, {"collections": []})  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _busy(status: int, wait: str | None) -> tuple[int, dict[str, str], dict[str, Any]]:
    code = "unavailable" if status == 503 else "too_many_requests"
    return status, ({"Retry-After": wait} if wait else {}), {
        "error": {"code": code, "message": "busy"}}


def test_retries_honour_retry_after(stub: Any) -> None:
    base = f"http://127.0.0.1:{stub.server_address[1]}"
    stub.script = [_busy(503, "1"), _busy(429, "0")]
    with Client(base, retries=3) as client:
        assert client.collections.list() == []
    assert len(stub.seen) == 3
    assert stub.seen[1] - stub.seen[0] >= 0.9  # waited the server's Retry-After: 1

    stub.seen.clear()
    stub.script = [_busy(503, "0")] * 3
    with Client(base, retries=2) as client, pytest.raises(Unavailable):
        client.collections.list()
    assert len(stub.seen) == 3  # one try and two retries

    stub.seen.clear()
    stub.script = [_busy(429, "120")]
    with Client(base, max_retry_wait=5) as client, pytest.raises(EmbedopsError) as limited:
        client.collections.list()
    assert len(stub.seen) == 1  # a wait beyond max_retry_wait is not waited for
    assert (limited.value.http_status, limited.value.code) == (429, "too_many_requests")


def test_unreachable_server_is_unavailable() -> None:
    with Client(f"http://127.0.0.1:{free_port()}", retries=1) as client, \
            pytest.raises(Unavailable):
        client.collections.list()
