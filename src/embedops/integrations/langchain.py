"""LangChain: ``EmbedopsEmbeddings`` (an ``Embeddings``) and ``EmbedopsVectorStore`` (a
``VectorStore`` over an embedops collection), in process or over HTTP.

    from embedops import Embedops                 # or: from embedops.client import Client
    from embedops.integrations.langchain import EmbedopsEmbeddings, EmbedopsVectorStore
    eo = Embedops(home="./embedops-data")         # or: Client("http://127.0.0.1:8000", key)
    store = EmbedopsVectorStore.from_texts(["a red fox"], EmbedopsEmbeddings(eo, "minilm"),
                                           collection_name="docs")
    store.similarity_search("fox", k=1, filter={"lang": "en"})

The collection embeds its items itself, with its own model version, so texts are never
embedded twice and a query is always compared with vectors of the same model. Needs
``pip install 'embedops[langchain]'``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from embedops.errors import InvalidInput
from embedops.integrations._common import (
    BATCH,
    batches,
    delete_ids,
    delete_where,
    hit_vectors,
    is_remote,
    mmr,
    relevance,
    upsert,
)
from embedops.search.models import Hit

if TYPE_CHECKING:
    from embedops.integrations._common import Backend


class EmbedopsEmbeddings(Embeddings):
    """Texts to vectors with an embedops model, through an ``Embedops`` (in process) or a
    ``Client`` (remote). ``model`` is ``name``, ``name@N`` or an alias (None: the only one)."""

    def __init__(self, backend: Backend, model: str | None = None,
                 batch_size: int = BATCH) -> None:
        self.backend, self.model, self.batch_size = backend, model, batch_size

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order."""
        out: list[list[float]] = []
        for chunk in batches(list(texts), self.batch_size):
            out.extend(self.backend.embed(list(chunk), model=self.model).tolist())
        return out

    def embed_query(self, text: str) -> list[float]:
        """The vector of one query text."""
        return list(self.backend.embed([text], model=self.model)[0].tolist())


def _document(hit: Hit) -> Document:
    return Document(id=hit.id, page_content=hit.text, metadata=dict(hit.metadata))


class EmbedopsVectorStore(VectorStore):
    """A LangChain vector store over the embedops collection ``collection``.

    ``filter`` arguments are embedops filters (``{"f": v}``, ``{"f": {"in": [...]}}``,
    ``{"f": {"gte": a, "lt": b}}``); ``mode`` is dense, lexical, hybrid or two_stage (per call
    too); other search keywords (``search_params``, ``hybrid_weight``, ``model_version``) are
    passed to ``search``. Scores are embedops scores: higher is more similar."""

    def __init__(self, backend: Backend, collection: str, mode: str = "dense") -> None:
        self.backend, self.collection, self.mode = backend, collection, mode

    @property
    def embeddings(self) -> EmbedopsEmbeddings:
        """The collection's own model as an ``Embeddings``."""
        version = self.backend.collection_info(self.collection).model_version
        return EmbedopsEmbeddings(self.backend, version)

    # -- writes --------------------------------------------------------------------------------
    def add_texts(self, texts: Iterable[str], metadatas: list[dict[str, Any]] | None = None,
                  *, ids: list[str] | None = None, **kwargs: Any) -> list[str]:
        """Upsert ``texts`` (new uuid4 ids unless given); unchanged items are not re-embedded."""
        rows = list(texts)
        metas = list(metadatas) if metadatas is not None else [{} for _ in rows]
        keys = [str(i) if i else str(uuid.uuid4()) for i in ids] if ids else \
            [str(uuid.uuid4()) for _ in rows]
        if len(metas) != len(rows) or len(keys) != len(rows):
            raise InvalidInput(f"{len(rows)} texts but {len(metas)} metadatas and "
                               f"{len(keys)} ids", "pass one metadata dict and one id per text")
        upsert(self.backend, self.collection,
               [{"id": i, "text": t, "metadata": m} for i, t, m in zip(keys, rows, metas,
                                                                         strict=True)])
        return keys

    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Upsert documents (their ``id``, else ``ids=``, else new uuid4 ids)."""
        ids = kwargs.pop("ids", None) or [doc.id or str(uuid.uuid4()) for doc in documents]
        return self.add_texts([d.page_content for d in documents],
                              [dict(d.metadata) for d in documents], ids=list(ids), **kwargs)

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete items by id; with no ids, every item (or those matching ``filter=``)."""
        if ids is None:
            delete_where(self.backend, self.collection, kwargs.get("filter"))
        else:
            delete_ids(self.backend, self.collection, ids)
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The live items with these ids, in the order asked (unknown ids are left out)."""
        return [Document(id=it.id, page_content=it.text, metadata=dict(it.metadata))
                for it in self.backend.get_items(self.collection, list(ids))]

    # -- search --------------------------------------------------------------------------------
    def _search(self, query: str | None, k: int, filter: Mapping[str, Any] | None,
                vector: Any = None, **kwargs: Any) -> list[Hit]:
        mode = kwargs.pop("mode", self.mode)
        kwargs.pop("score_threshold", None)  # applied by LangChain to relevance scores
        return self.backend.search(self.collection, query, k=k, mode=mode, filters=filter,
                                   vector=vector, **kwargs).hits

    def similarity_search(self, query: str, k: int = 4,
                          filter: Mapping[str, Any] | None = None,
                          **kwargs: Any) -> list[Document]:
        """The ``k`` items most similar to ``query``, best first."""
        return [_document(hit) for hit in self._search(query, k, filter, **kwargs)]

    def similarity_search_with_score(self, query: str, k: int = 4,
                                     filter: Mapping[str, Any] | None = None,
                                     **kwargs: Any) -> list[tuple[Document, float]]:
        """The ``k`` best items with their embedops scores (higher is more similar)."""
        return [(_document(h), h.score) for h in self._search(query, k, filter, **kwargs)]

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4,
                                    filter: Mapping[str, Any] | None = None,
                                    **kwargs: Any) -> list[Document]:
        """The ``k`` items nearest to ``embedding`` (of the collection's model and dim)."""
        hits = self._search(None, k, filter, vector=embedding, **kwargs)
        return [_document(hit) for hit in hits]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        metric = self.backend.collection_info(self.collection).metric
        return lambda score: relevance(metric, score)

    def max_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20,
                                      lambda_mult: float = 0.5,
                                      filter: Mapping[str, Any] | None = None,
                                      **kwargs: Any) -> list[Document]:
        """``k`` of the ``fetch_k`` best items, chosen for relevance and diversity."""
        vector = self.embeddings.embed_query(query)
        return self.max_marginal_relevance_search_by_vector(vector, k, fetch_k, lambda_mult,
                                                            filter, **kwargs)

    def max_marginal_relevance_search_by_vector(
        self, embedding: list[float], k: int = 4, fetch_k: int = 20,
        lambda_mult: float = 0.5, filter: Mapping[str, Any] | None = None, **kwargs: Any,
    ) -> list[Document]:
        """MMR over the ``fetch_k`` items nearest to ``embedding``, using their stored vectors
        (in process) or their re-embedded texts (remote)."""
        kwargs.pop("mode", None)
        hits = self._search(None, max(fetch_k, k), filter, vector=embedding, mode="dense",
                            **kwargs)
        vectors = hit_vectors(self.backend, self.collection, hits)
        picked = mmr(np.asarray(embedding, np.float32), vectors, k, lambda_mult)
        return [_document(hits[i]) for i in picked]

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_texts(cls, texts: list[str], embedding: Embeddings,
                   metadatas: list[dict[str, Any]] | None = None, *,
                   ids: list[str] | None = None, **kwargs: Any) -> EmbedopsVectorStore:
        """A store over collection ``collection_name`` (created with the model of
        ``embedding``, an ``EmbedopsEmbeddings``, unless it exists), holding ``texts``.
        ``backend=`` and ``model=`` may be given instead of an ``EmbedopsEmbeddings``."""
        backend = kwargs.pop("backend", None) or getattr(embedding, "backend", None)
        model = kwargs.pop("model", None) or getattr(embedding, "model", None)
        name = kwargs.pop("collection_name", None)
        if backend is None or not name:
            raise InvalidInput("from_texts needs an EmbedopsEmbeddings (or backend= and "
                               "model=) and collection_name=")
        if model is None and not is_remote(backend):
            model = backend.default_model()
        if model is None:
            raise InvalidInput("from_texts over HTTP needs the model of the collection",
                               "pass EmbedopsEmbeddings(client, 'model') or model=")
        metric = kwargs.pop("metric", "cosine")
        backend.collections.get_or_create(name, model, metric=metric)
        store = cls(backend, name, mode=kwargs.pop("mode", "dense"))
        store.add_texts(texts, metadatas, ids=ids)
        return store
