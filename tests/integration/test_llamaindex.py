"""The LlamaIndex adapters against the real ``llama-index-core``: ``EmbedopsEmbedding`` and
``EmbedopsVectorStore`` end to end through ``VectorStoreIndex`` (add, query with metadata
filters, delete by document), in process over ``Embedops`` and remotely over ``Client``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from serve_helpers import lee_documents, running_server

pytest.importorskip("llama_index.core")

from llama_index.core import Document, StorageContext, VectorStoreIndex  # noqa: E402
from llama_index.core.schema import TextNode  # noqa: E402
from llama_index.core.vector_stores.types import (  # noqa: E402
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from embedops.client import Client  # noqa: E402
from embedops.config import Workspace  # noqa: E402
from embedops.engine import Embedops  # noqa: E402
from embedops.errors import InvalidInput  # noqa: E402
from embedops.integrations.llamaindex import (  # noqa: E402
    EmbedopsEmbedding,
    EmbedopsVectorStore,
    to_filters,
)
from embedops.models.registry import Registry  # noqa: E402
from embedops.models.static import StaticVectors, publish_static  # noqa: E402
from embedops.serve.app import create_app  # noqa: E402
from embedops.serve.settings import ServeSettings  # noqa: E402
from embedops.text.tokenize import TokenizerSpec  # noqa: E402

DOCS = lee_documents(24)


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
    ws = Workspace(tmp_path_factory.mktemp("llamaindex") / "ws").ensure()
    publish_tiny(ws, lee_corpus)
    settings = ServeSettings(home=str(ws.home), auth=False)
    with running_server(create_app(settings)) as base, Embedops(ws) as local, \
            Client(base) as remote:
        yield {"local": local, "remote": remote}


def _new_store(backend: Any, name: str) -> EmbedopsVectorStore:
    """A store over a new collection ``name`` of the tiny model."""
    backend.collections.create(name, "tiny")
    return EmbedopsVectorStore(backend, collection_name=name)


def _f(key: str, value: Any, op: FilterOperator = FilterOperator.EQ) -> MetadataFilter:
    return MetadataFilter(key=key, value=value, operator=op)


@pytest.mark.parametrize("where", ["local", "remote"])
def test_embedding_equals_the_engine(backends: dict[str, Any], where: str) -> None:
    embed = EmbedopsEmbedding(backends[where], model="tiny", embed_batch_size=5)
    texts = [d["text"] for d in DOCS[:12]]
    got = np.asarray(embed.get_text_embedding_batch(texts))
    want = backends["local"].embed(texts, model="tiny")
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert got.shape == (12, 16) and cos.min() >= 0.9999
    query = np.asarray(embed.get_query_embedding(texts[0]))
    assert float(query @ want[0] / np.linalg.norm(query) / np.linalg.norm(want[0])) >= 0.9999


@pytest.mark.parametrize("where", ["local", "remote"])
def test_vector_store_end_to_end(backends: dict[str, Any], where: str) -> None:
    backend, name = backends[where], f"li-{where}"
    store = _new_store(backend, name)
    documents = [Document(text=d["text"], metadata=d["metadata"], doc_id=d["id"])
                 for d in DOCS]
    index = VectorStoreIndex.from_documents(
        documents, storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=EmbedopsEmbedding(backend, model="tiny"))
    assert backend.count(name) == len(DOCS)

    hits = index.as_retriever(similarity_top_k=3).retrieve(DOCS[5]["text"])
    assert hits[0].node.ref_doc_id == "doc5"
    assert hits[0].node.get_content() == DOCS[5]["text"].strip()
    assert hits[0].node.metadata == DOCS[5]["metadata"] and hits[0].score >= hits[1].score
    (fetched,) = store.get_nodes([hits[0].node.node_id])
    assert (fetched.ref_doc_id, fetched.metadata) == ("doc5", DOCS[5]["metadata"])

    filters = MetadataFilters(filters=[_f("half", "a"), _f("n", 9, FilterOperator.GT),
                                       _f("n", 15, FilterOperator.LTE)])
    filtered = index.as_retriever(similarity_top_k=10, filters=filters).retrieve("police")
    assert sorted(h.node.metadata["n"] for h in filtered) == [11, 13, 15]

    result = store.query(VectorStoreQuery(query_str=DOCS[8]["text"][:60], similarity_top_k=2,
                                          mode=VectorStoreQueryMode.TEXT_SEARCH))
    assert result.nodes is not None and result.nodes[0].ref_doc_id == "doc8"
    assert result.ids is not None and len(result.ids) == 2 and result.similarities
    within = MetadataFilters(filters=[_f("n", [1, 2, 3], FilterOperator.IN)])
    hybrid = store.query(VectorStoreQuery(query_str=DOCS[2]["text"], similarity_top_k=5,
                                          mode=VectorStoreQueryMode.HYBRID, alpha=0.5,
                                          filters=within))
    assert {n.metadata["n"] for n in hybrid.nodes or []} == {1, 2, 3}
    query_vector = EmbedopsEmbedding(backend, model="tiny").get_query_embedding(DOCS[3]["text"])
    mmr = store.query(VectorStoreQuery(query_embedding=query_vector, similarity_top_k=4,
                                       mode=VectorStoreQueryMode.MMR, mmr_threshold=0.3))
    assert len(set(mmr.ids or [])) == 4 and (mmr.nodes or [])[0].ref_doc_id == "doc3"
    by_doc = store.query(VectorStoreQuery(query_embedding=query_vector, similarity_top_k=5,
                                          doc_ids=["doc1", "doc7"]))
    assert {n.ref_doc_id for n in by_doc.nodes or []} == {"doc1", "doc7"}

    index.delete_ref_doc("doc5")
    assert backend.count(name) == len(DOCS) - 1
    again = index.as_retriever(similarity_top_k=3).retrieve(DOCS[5]["text"])
    assert "doc5" not in {h.node.ref_doc_id for h in again}


@pytest.mark.parametrize("where", ["local", "remote"])
def test_get_and_delete_nodes(backends: dict[str, Any], where: str) -> None:
    backend, name = backends[where], f"li-nodes-{where}"
    store = _new_store(backend, name)
    store.add([TextNode(id_=d["id"], text=d["text"], metadata=d["metadata"]) for d in DOCS[:8]])
    got = store.get_nodes(["doc5", "nope", "doc2"])
    assert [(n.node_id, n.get_content().strip(), n.metadata) for n in got] == [
        (d["id"], d["text"].strip(), d["metadata"]) for d in (DOCS[5], DOCS[2])]
    odd = MetadataFilters(filters=[_f("half", "a")])
    assert [n.node_id for n in store.get_nodes(filters=odd)] == ["doc1", "doc3", "doc5", "doc7"]
    assert [n.node_id for n in store.get_nodes(["doc1", "doc2", "doc3"], odd)] == ["doc1", "doc3"]

    store.delete_nodes(["doc1", "doc2"], filters=odd)  # doc2 does not pass the filter: kept
    assert backend.ids_where(name) == ["doc0", "doc2", "doc3", "doc4", "doc5", "doc6", "doc7"]
    store.delete_nodes(filters=MetadataFilters(filters=[_f("n", 5, FilterOperator.GTE)]))
    assert backend.ids_where(name) == ["doc0", "doc2", "doc3", "doc4"]
    with pytest.raises(InvalidInput, match="clear"):
        store.delete_nodes()
    store.clear()
    assert backend.count(name) == 0 and store.get_nodes() == []


def test_plain_items_and_refusals(backends: dict[str, Any]) -> None:
    local = backends["local"]
    local.collections.create("li-plain", "tiny")
    local.upsert_items("li-plain", [{"id": "p1", "text": "bushfires near sydney",
                                     "metadata": {"lang": "en"}}])
    store = EmbedopsVectorStore(local, "li-plain")
    result = store.query(VectorStoreQuery(query_str="bushfires", similarity_top_k=1))
    node = (result.nodes or [])[0]
    assert isinstance(node, TextNode) and (node.node_id, node.metadata) == ("p1", {"lang": "en"})
    store.add([TextNode(id_="n1", text="koala rescued", metadata={"tags": {"a": 1}})])
    assert local.count("li-plain") == 2

    either = MetadataFilters(filters=[_f("a", 1), _f("b", 2)], condition=FilterCondition.OR)
    with pytest.raises(InvalidInput, match="AND"):
        to_filters(either)
    with pytest.raises(InvalidInput, match="operator"):
        to_filters(MetadataFilters(filters=[_f("a", ["x"], FilterOperator.NIN)]))
    nested = MetadataFilters(filters=[_f("a", 1), MetadataFilters(filters=[
        _f("b", 2, FilterOperator.GTE), _f("b", 5, FilterOperator.LT)])])
    assert to_filters(nested, ["d1"]) == {"a": {"eq": 1}, "b": {"gte": 2, "lt": 5},
                                          "ref_doc_id": {"in": ["d1"]}}
    with pytest.raises(InvalidInput):
        store.query(VectorStoreQuery(query_str="x", node_ids=["n1"]))
