"""LlamaIndex: ``EmbedopsEmbedding`` (a ``BaseEmbedding``) and ``EmbedopsVectorStore`` (a
``BasePydanticVectorStore`` over an embedops collection), in process or over HTTP.

    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from embedops.integrations.llamaindex import EmbedopsEmbedding, EmbedopsVectorStore
    store = EmbedopsVectorStore(backend=eo, collection_name="docs")   # eo: Embedops or Client
    index = VectorStoreIndex.from_documents(
        [Document(text="a red fox")], embed_model=EmbedopsEmbedding(backend=eo, model="minilm"),
        storage_context=StorageContext.from_defaults(vector_store=store))
    index.as_retriever(similarity_top_k=3).retrieve("fox")

The collection embeds node texts itself with its own model version (``stores_text``); a query
is searched with its embedding when it has one (it must come from that model), else its text.
Needs ``pip install 'embedops[llamaindex]'``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.schema import BaseNode, MetadataMode, TextNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict

from embedops.errors import InvalidInput
from embedops.integrations._common import delete_ids, delete_where, hit_vectors, mmr, upsert
from embedops.search.models import Hit
from embedops.store.models import Item

if TYPE_CHECKING:
    from embedops.integrations._common import Backend

_OPERATORS = {
    FilterOperator.EQ: "eq", FilterOperator.NE: "ne", FilterOperator.GT: "gt",
    FilterOperator.GTE: "gte", FilterOperator.LT: "lt", FilterOperator.LTE: "lte",
    FilterOperator.IN: "in",
}
_MODES = {
    VectorStoreQueryMode.DEFAULT: "dense", VectorStoreQueryMode.TEXT_SEARCH: "lexical",
    VectorStoreQueryMode.SPARSE: "lexical", VectorStoreQueryMode.HYBRID: "hybrid",
}


class EmbedopsEmbedding(BaseEmbedding):
    """Texts to vectors with an embedops model through an ``Embedops`` or a ``Client``.
    ``model`` is ``name``, ``name@N`` or an alias (None: the backend's only model)."""

    model: str | None = None
    _backend: Any = PrivateAttr()

    def __init__(self, backend: Backend, model: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("model_name", model or "embedops")
        super().__init__(**{**kwargs, "model": model})
        self._backend = backend

    @classmethod
    def class_name(cls) -> str:
        return "EmbedopsEmbedding"

    def _embed(self, texts: list[str]) -> list[list[float]]:
        vectors = self._backend.embed(texts, model=self.model)
        return [list(map(float, row)) for row in np.asarray(vectors, np.float32)]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embed([query])[0]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embed([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embed(list(texts))


def to_filters(filters: MetadataFilters | None,
               doc_ids: Sequence[str] | None = None) -> dict[str, Any] | None:
    """LlamaIndex metadata filters as an embedops filter dict (a conjunction): EQ, NE, GT, GTE,
    LT, LTE and IN map one to one; OR, NOT and other operators are refused."""
    out: dict[str, dict[str, Any]] = {}

    def add(key: str, op: str, value: Any) -> None:
        spec = out.setdefault(key, {})
        if op in spec:
            raise InvalidInput(f"two '{op}' filters on '{key}'",
                               "embedops filters are one conjunction: combine them into one")
        spec[op] = list(value) if op == "in" else value

    def walk(group: MetadataFilters) -> None:
        if group.condition not in (None, FilterCondition.AND) and len(group.filters) > 1:
            raise InvalidInput(f"metadata filter condition {group.condition} is not supported",
                               "embedops filters combine conditions with AND only")
        for item in group.filters:
            if isinstance(item, MetadataFilters):
                walk(item)
            elif isinstance(item, MetadataFilter) and item.operator in _OPERATORS:
                add(item.key, _OPERATORS[item.operator], item.value)
            else:
                op = getattr(item, "operator", "?")
                raise InvalidInput(f"metadata filter operator {op} on '{item.key}' is not "
                                   "supported", "use ==, !=, >, >=, <, <= or in")

    if filters is not None:
        walk(filters)
    if doc_ids:
        add("ref_doc_id", "in", doc_ids)
    return out or None


def _node(found: Hit | Item) -> BaseNode:
    """The node stored in a hit or an item (a TextNode for items not written by LlamaIndex)."""
    if "_node_content" in found.metadata:
        return metadata_dict_to_node(found.metadata, text=found.text)
    return TextNode(id_=found.id, text=found.text, metadata=dict(found.metadata))


class EmbedopsVectorStore(BasePydanticVectorStore):
    """A LlamaIndex vector store over the embedops collection ``collection_name``."""

    stores_text: bool = True
    collection_name: str
    _backend: Any = PrivateAttr()

    def __init__(self, backend: Backend, collection_name: str, **kwargs: Any) -> None:
        super().__init__(**{**kwargs, "collection_name": collection_name})
        self._backend = backend

    @classmethod
    def class_name(cls) -> str:
        return "EmbedopsVectorStore"

    @property
    def client(self) -> Any:
        """The ``Embedops`` or ``Client`` this store calls."""
        return self._backend

    def add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        """Upsert ``nodes`` as items (id = node id, text = node content; the node itself,
        without text and embedding, is kept in metadata); returns their ids."""
        items = [
            {"id": node.node_id, "text": node.get_content(metadata_mode=MetadataMode.NONE),
             "metadata": node_to_metadata_dict(node, remove_text=True)}
            for node in nodes
        ]
        upsert(self._backend, self.collection_name, items)
        return [node.node_id for node in nodes]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of document ``ref_doc_id``."""
        delete_where(self._backend, self.collection_name, {"ref_doc_id": ref_doc_id})

    def _ids(self, node_ids: Sequence[str] | None,
             filters: MetadataFilters | None) -> list[str]:
        """Ids of the nodes named (all when None) that pass ``filters`` (all when None)."""
        where = to_filters(filters)
        if node_ids is None:
            return list(self._backend.ids_where(self.collection_name, where))
        if where is None:
            return list(node_ids)
        passing = set(self._backend.ids_where(self.collection_name, where))
        return [node_id for node_id in node_ids if node_id in passing]

    def get_nodes(self, node_ids: list[str] | None = None,
                  filters: MetadataFilters | None = None) -> list[BaseNode]:
        """The stored nodes with these ids (in that order; unknown ids are left out) that pass
        ``filters``; every node passing ``filters`` when no ids are given."""
        items = self._backend.get_items(self.collection_name, self._ids(node_ids, filters))
        return [_node(it) for it in items]

    def delete_nodes(self, node_ids: list[str] | None = None,
                     filters: MetadataFilters | None = None, **delete_kwargs: Any) -> None:
        """Delete the nodes with these ids that pass ``filters`` (at least one is needed:
        ``clear`` deletes every node)."""
        if node_ids is None and filters is None:
            raise InvalidInput("delete_nodes needs node_ids or filters",
                               "name the nodes to delete, or call clear() to delete all")
        delete_ids(self._backend, self.collection_name, self._ids(node_ids, filters))

    def clear(self) -> None:
        """Delete every node of the collection (the collection itself stays)."""
        delete_where(self._backend, self.collection_name, None)

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The ``similarity_top_k`` best nodes: dense (default; the query embedding, else its
        text), lexical (text_search, sparse), hybrid (``alpha`` = dense share) or MMR, with
        metadata filters and ``doc_ids``."""
        if query.node_ids:
            raise InvalidInput("queries restricted to node_ids are not supported",
                               "filter on metadata or doc_ids instead")
        filters = to_filters(query.filters, query.doc_ids)
        k = query.similarity_top_k
        if query.mode == VectorStoreQueryMode.MMR:
            hits = self._mmr(query, filters, k)
        elif query.mode in _MODES:
            mode = _MODES[query.mode]
            vector = query.query_embedding if mode != "lexical" else None
            text = query.query_str if mode != "dense" or vector is None else None
            extra = {} if query.alpha is None else {"hybrid_weight": query.alpha}
            hits = self._backend.search(self.collection_name, text, k=k, mode=mode,
                                        filters=filters, vector=vector, **extra, **kwargs).hits
        else:
            raise InvalidInput(f"query mode {query.mode.value!r} is not supported",
                               "use default, text_search, sparse, hybrid or mmr")
        return VectorStoreQueryResult(nodes=[_node(h) for h in hits],
                                      similarities=[h.score for h in hits],
                                      ids=[h.id for h in hits])

    def _mmr(self, query: VectorStoreQuery, filters: dict[str, Any] | None,
             k: int) -> list[Hit]:
        vector = query.query_embedding
        if vector is None:
            version = self._backend.collection_info(self.collection_name).model_version
            vector = self._backend.embed([query.query_str or ""], model=version)[0]
        fetch = max(4 * k, 20)
        hits = self._backend.search(self.collection_name, k=fetch, filters=filters,
                                    vector=vector).hits
        vectors = hit_vectors(self._backend, self.collection_name, hits)
        lambda_mult = 0.5 if query.mmr_threshold is None else query.mmr_threshold
        return [hits[i] for i in mmr(np.asarray(vector, np.float32), vectors, k, lambda_mult)]
