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


class DuplicatesRequest(_Strict):
    threshold: float = Field(0.9, gt=0, le=1, description="Cosine at least.")
    lexical: float = Field(0.5, ge=0, le=1, description="Token Jaccard at least.")
    filters: dict[str, Any] | None = Field(None, description="Metadata filters, as in search.")
