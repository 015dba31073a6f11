"""Request bodies (pydantic models at the HTTP edge). Static bounds live here; the configurable
limits (batch, text length, k) are checked by ``embedops.serve.limits`` and answered with 413.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from embedops.search.hybrid import DEFAULT_HYBRID_WEIGHT

Ref = Annotated[str, Field(min_length=1, max_length=200, description="name, name@N or name@latest")]
Name = Annotated[str, Field(min_length=1, max_length=64)]
Word = Annotated[str, Field(min_length=1, max_length=200)]
Mode = Literal["dense", "lexical", "hybrid", "two_stage"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmbedRequest(_Strict):
    texts: list[str] = Field(min_length=1, description="Texts to embed (a batch).")
    model: Ref | None = Field(None, description="Model version to use (default: the latest).")


class NeighboursRequest(_Strict):
    word: Word
    model: Ref | None = None
    k: int = Field(10, ge=1)


class SimilarityRequest(_Strict):
    a: Word
    b: Word
    model: Ref | None = None


class AnalogyRequest(_Strict):
    a: Word = Field(description="a is to b ...")
    b: Word
    c: Word = Field(description="... as c is to ?")
    model: Ref | None = None
    k: int = Field(10, ge=1)


class CollectionCreate(_Strict):
    name: Name
    model: Ref = Field(description="The model version whose vectors the collection stores.")
    metric: Literal["cosine", "ip", "l2"] = "cosine"


class ItemBody(_Strict):
    id: Annotated[str, Field(min_length=1, max_length=512)]
    text: str = Field(min_length=1)
    metadata: dict[str, Any] = Field(default_factory=dict)


class ItemsUpsert(_Strict):
    items: list[ItemBody] = Field(min_length=1)


class ItemsDelete(_Strict):
    ids: list[Annotated[str, Field(min_length=1, max_length=512)]] = Field(min_length=1)


class SearchRequest(_Strict):
    query: str | None = Field(None, min_length=1, description="Query text.")
    vector: list[float] | None = Field(
        None, min_length=1,
        description="Query embedding of the collection's dimension, instead of (dense) or with "
        "(hybrid) the query text; it is not encoded again.",
    )
    k: int = Field(10, ge=1)
    mode: Mode = "dense"
    filters: dict[str, Any] | None = Field(
        None, description='{"field": value}, {"field": {"in": [...]}}, {"field": {"gte": x}}'
    )
    model_version: Ref | None = Field(None, description="Pin the model version (rollouts).")
    hybrid_weight: float = Field(DEFAULT_HYBRID_WEIGHT, ge=0.0, le=1.0)


class IndexBuild(_Strict):
    kind: Literal["flat", "hnsw", "ivf", "ivfpq", "sq8"] = "hnsw"
    params: dict[str, Any] | None = None
    model_version: Ref | None = None
