"""Request bodies of the use-case routes (``serve/routes_usecases.py``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClassifyTrainRequest(_Strict):
    collection: str = Field(..., min_length=1, description="Collection to train on.")
    name: str | None = Field(None, description="Classifier name (default: the collection's).")
    label_field: str = Field("label", min_length=1, description="Metadata field of the label.")
    labels: dict[str, str] | None = Field(
        None, description="id → label (instead of label_field).")
    c: float = Field(10.0, gt=0, description="Inverse regularization strength.")
    test_size: float = Field(0.2, gt=0, lt=1, description="Held-out share.")
    features: Literal["embedding", "embedding+tfidf"] = Field(
        "embedding", description="The vectors alone, or TF-IDF of the texts beside them.")


class ClassifyPredictRequest(_Strict):
    texts: list[str] = Field(..., min_length=1, description="Texts to classify.")
    k: int = Field(1, ge=1, le=100, description="Labels per text.")
    threshold: float = Field(0.0, ge=0, le=1, description="Abstain below this probability.")


class RecommendRequest(_Strict):
    positive: list[str] = Field(default_factory=list, description="Ids to find more like.")
    weights: dict[str, float] | None = Field(
        None, description="A weighted history (id → weight), added to positive.")
    negative: list[str] = Field(default_factory=list, description="Ids to move away from.")
    exclude: list[str] = Field(default_factory=list, description="Ids never returned.")
    k: int = Field(10, ge=1, le=1000)
    diversity: float = Field(0.0, ge=0, le=1, description="MMR diversity (0: relevance only).")
    filters: dict[str, Any] | None = Field(None, description="Metadata filters, as in search.")


class ClusterRequest(_Strict):
    k: list[int] = Field(default_factory=lambda: [2, 4, 8, 16], min_length=1,
                         description="k values to sweep (best silhouette kept).")
    filters: dict[str, Any] | None = Field(None, description="Metadata filters, as in search.")
    label_field: str | None = Field(None, description="Metadata field for NMI/ARI.")
    store: bool = Field(False, description="Write assignments into metadata (needs write).")
    assignments: bool = Field(False, description="Return the id → cluster assignments.")
    method: Literal["kmeans", "hdbscan"] = Field(
        "kmeans", description="k-means (k sweep) or HDBSCAN (density; noise labelled -1).")
    min_cluster_size: int = Field(5, ge=2, description="HDBSCAN: items per cluster at least.")


class DuplicatesRequest(_Strict):
    threshold: float = Field(0.9, gt=0, le=1, description="Cosine at least.")
    lexical: float = Field(0.5, ge=0, le=1, description="Token Jaccard at least.")
    filters: dict[str, Any] | None = Field(None, description="Metadata filters, as in search.")


class MapFitRequest(_Strict):
    source: str = Field(..., min_length=1, description="Source model version.")
    target: str = Field(..., min_length=1, description="Target model version.")
    pairs: list[tuple[str, str]] = Field(..., min_length=1, max_length=200_000,
                                         description="Seed dictionary: [source, target] pairs.")
    name: str = Field("map", description="Map name.")
    test_share: float = Field(0.2, gt=0, lt=1, description="Held-out share of the pairs.")


class MapApplyRequest(_Strict):
    texts: list[str] = Field(..., min_length=1, max_length=2048,
                             description="Texts to embed with the source model and map.")


class ExpandOptionsBody(_Strict):
    model: str | None = Field(None, description="Static model (default: the collection's).")
    per_term: int = Field(3, ge=0, le=50, description="Neighbours per query word at most.")
    max_terms: int = Field(10, ge=0, le=100, description="Terms added in all at most.")
    min_similarity: float = Field(0.6, ge=-1, le=1, description="Lowest cosine of a neighbour.")
    weight: float = Field(0.5, gt=0, le=1, description="Weight of an added term x its cosine.")


class ExpandRequest(ExpandOptionsBody):
    query: str = Field(..., min_length=1, max_length=2048, description="The query to expand.")


class ExpandedSearchRequest(_Strict):
    query: str = Field(..., min_length=1, max_length=2048, description="The query.")
    k: int = Field(10, ge=1, le=1000)
    mode: Literal["lexical", "hybrid"] = Field("hybrid", description="Lexical or hybrid.")
    filters: dict[str, Any] | None = Field(None, description="Metadata filters, as in search.")
    hybrid_weight: float = Field(0.3, ge=0, le=1, description="Dense share of the fusion.")
    expand: ExpandOptionsBody | None = Field(None, description="How to expand the query "
                                             "(default: the defaults of /v1/expand).")


class AutocompleteRequest(_Strict):
    partial: str = Field(..., min_length=1, max_length=200, description="What was typed.")
    k: int = Field(5, ge=1, le=50, description="Completions at most.")


class RecordQueriesRequest(_Strict):
    queries: list[str] = Field(..., min_length=1, max_length=1000,
                               description="Past queries to count for autocomplete.")


class DocumentIn(_Strict):
    id: str = Field(..., min_length=1, description="Parent id (no '#').")
    text: str = Field(..., min_length=1, description="The whole document.")
    metadata: dict[str, Any] = Field(default_factory=dict)


class DocumentsRequest(_Strict):
    documents: list[DocumentIn] = Field(..., min_length=1, max_length=1000)
    chunk_tokens: int = Field(200, ge=8, le=8192, description="Tokens per chunk at most.")
    overlap: int | None = Field(None, ge=0, description="Tokens shared by consecutive chunks "
                                "(default a fifth of a chunk).")


class ContextRequest(_Strict):
    query: str = Field(..., min_length=1, max_length=2048, description="The question.")
    budget: int = Field(512, ge=1, le=100_000, description="Tokens of context at most.")
    candidates: int = Field(50, ge=1, le=1000, description="Chunks retrieved before packing.")
    diversity: float = Field(0.3, ge=0, le=1, description="MMR diversity (0: relevance only).")
    mode: Literal["dense", "lexical", "hybrid"] = Field("hybrid", description="Search mode.")
    filters: dict[str, Any] | None = Field(None, description="Metadata filters, as in search.")
