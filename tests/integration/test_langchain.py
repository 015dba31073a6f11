"""The LangChain adapters against the real ``langchain-core``: ``EmbedopsEmbeddings`` and
``EmbedopsVectorStore`` end to end (add, search with scores and filters, MMR, retriever,
delete), in process over ``Embedops`` and remotely over ``Client`` and a real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from serve_helpers import lee_documents, running_server

pytest.importorskip("langchain_core")

from langchain_core.documents import Document  # noqa: E402
from langchain_core.vectorstores import VectorStoreRetriever  # noqa: E402

from embedops.client import Client  # noqa: E402
from embedops.config import Workspace  # noqa: E402
from embedops.engine import Embedops  # noqa: E402
from embedops.errors import CollectionNotFound  # noqa: E402
from embedops.integrations.langchain import EmbedopsEmbeddings, EmbedopsVectorStore  # noqa: E402
from embedops.models.registry import Registry  # noqa: E402
from embedops.models.static import StaticVectors, publish_static  # noqa: E402
from embedops.serve.app import create_app  # noqa: E402
from embedops.serve.settings import ServeSettings  # noqa: E402
from embedops.text.tokenize import TokenizerSpec  # noqa: E402

DOCS = lee_documents(30)
TEXTS = [d["text"] for d in DOCS]
METAS = [d["metadata"] for d in DOCS]
IDS = [d["id"] for d in DOCS]


def publish_tiny(ws: Workspace, corpus: Path) -> str:
    """A static model over the corpus vocabulary with seeded random vectors (fast to build)."""
    spec = TokenizerSpec()
    vocab = sorted({t for line in corpus.read_text().splitlines() for t in spec.tokenize(line)})
    vectors = np.random.default_rng(0).standard_normal((len(vocab), 16)).astype(np.float32)
    return publish_static(Registry(ws), "tiny", StaticVectors(vocab, vectors), kind="static",
                          spec=spec).ref


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory,
             lee_corpus: Path) -> Iterator[dict[str, Any]]:
    """One workspace, reached in process and through a real server (auth off)."""
    ws = Workspace(tmp_path_factory.mktemp("langchain") / "ws").ensure()
    publish_tiny(ws, lee_corpus)
    settings = ServeSettings(home=str(ws.home), auth=False)
    with running_server(create_app(settings)) as base, Embedops(ws) as local, \
            Client(base) as remote:
        yield {"local": local, "remote": remote}


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.parametrize("where", ["local", "remote"])
def test_embeddings_equal_the_engine(backends: dict[str, Any], where: str) -> None:
    embeddings = EmbedopsEmbeddings(backends[where], "tiny", batch_size=7)
    docs = np.asarray(embeddings.embed_documents(TEXTS[:20]))
    want = backends["local"].embed(TEXTS[:20], model="tiny")
    assert docs.shape == (20, 16) and _cosines(docs, want).min() >= 0.9999
    query = np.asarray([embeddings.embed_query(TEXTS[0])])
    assert _cosines(query, want[:1]).min() >= 0.9999


@pytest.mark.parametrize("where", ["local", "remote"])
def test_vector_store_end_to_end(backends: dict[str, Any], where: str) -> None:
    backend = backends[where]
    name = f"lc-{where}"
    store = EmbedopsVectorStore.from_texts(TEXTS, EmbedopsEmbeddings(backend, "tiny"),
                                           METAS, ids=IDS, collection_name=name)
    assert backend.count(name) == 30

    found = store.similarity_search(TEXTS[4], k=3)
    assert isinstance(found[0], Document)
    assert (found[0].id, found[0].page_content, found[0].metadata) == ("doc4", TEXTS[4],
                                                                       METAS[4])
    scored = store.similarity_search_with_score(TEXTS[4], k=3, filter={"half": "a"})
    assert [d.metadata["half"] for d, _ in scored] == ["a"] * 3
    assert scored[0][1] >= scored[1][1] >= scored[2][1]
    ranged = store.similarity_search(TEXTS[4], k=30, filter={"n": {"gte": 10, "lt": 15}})
    assert sorted(d.metadata["n"] for d in ranged) == [10, 11, 12, 13, 14]
    lexical = store.similarity_search(TEXTS[7][:60], k=1, mode="lexical")
    assert lexical[0].id == "doc7"
    relevant = store.similarity_search_with_relevance_scores(TEXTS[4], k=2)
    assert relevant[0][1] == pytest.approx(1.0, abs=1e-4) and 0 <= relevant[1][1] <= 1

    vector = store.embeddings.embed_query(TEXTS[9])
    assert store.similarity_search_by_vector(vector, k=1)[0].id == "doc9"
    diverse = store.max_marginal_relevance_search(TEXTS[4], k=4, fetch_k=12, lambda_mult=0.3)
    assert len({d.id for d in diverse}) == 4 and diverse[0].id == "doc4"

    retriever = store.as_retriever(search_kwargs={"k": 2, "filter": {"half": "b"}})
    assert isinstance(retriever, VectorStoreRetriever)
    got = retriever.invoke(TEXTS[4])
    assert len(got) == 2 and all(d.metadata["half"] == "b" for d in got)
    mmr = store.as_retriever(search_type="mmr", search_kwargs={"k": 3, "fetch_k": 10})
    assert len(mmr.invoke(TEXTS[4])) == 3

    added = store.add_documents([Document(page_content="a koala walked into sydney",
                                          metadata={"n": 99}, id="koala")])
    assert added == ["koala"] and store.similarity_search("koala", k=1)[0].id == "koala"
    assert store.delete(["doc4", "koala"]) is True
    assert backend.count(name) == 29
    assert "doc4" not in {d.id for d in store.similarity_search(TEXTS[4], k=5)}
    store.delete(filter={"half": "a"})  # no ids: those that match the filter
    assert backend.count(name) == 14  # the half "b" documents but doc4
    store.delete()
    assert backend.count(name) == 0 and store.similarity_search("fire", k=3) == []


@pytest.mark.parametrize("where", ["local", "remote"])
def test_get_by_ids(backends: dict[str, Any], where: str) -> None:
    backend = backends[where]
    name = f"lc-ids-{where}"
    store = EmbedopsVectorStore.from_texts(TEXTS[:5], EmbedopsEmbeddings(backend, "tiny"),
                                           METAS[:5], ids=IDS[:5], collection_name=name)
    got = store.get_by_ids(["doc3", "nope", "doc1"])
    assert [(d.id, d.page_content, d.metadata) for d in got] == [
        ("doc3", TEXTS[3], METAS[3]), ("doc1", TEXTS[1], METAS[1])]
    store.delete(["doc1"])
    assert [d.id for d in store.get_by_ids(["doc1", "doc2"])] == ["doc2"]
    assert store.get_by_ids([]) == []
    with pytest.raises(CollectionNotFound):
        EmbedopsVectorStore(backend, "missing").get_by_ids(["doc1"])
    with pytest.raises(CollectionNotFound):
        EmbedopsVectorStore(backend, "missing").similarity_search("fire")
