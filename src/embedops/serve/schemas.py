"""Request bodies (pydantic models at the HTTP edge). Static bounds live here; the configurable
limits (batch, text length, k) are checked by ``embedops.serve.limits`` and answered with 413.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from embedops.engine.options import DEFAULT_HYBRID_WEIGHT

Ref = Annotated[str, Field(min_length=1, max_length=200, description="name, name@N or name@latest")]
Name = Annotated[str, Field(min_length=1, max_length=64)]
Word = Annotated[str, Field(min_length=1, max_length=200)]
Mode = Literal["dense", "lexical", "hybrid", "two_stage"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Model = TypeVar("Model", bound=BaseModel)


def _is_json(content_type: str | None) -> bool:
    """What FastAPI parses as JSON: ``application/json`` or ``application/*+json``."""
    if not content_type:
        return False
    kind = content_type.partition(";")[0].strip().lower()
    maintype, _, subtype = kind.partition("/")
    return maintype == "application" and (subtype == "json" or subtype.endswith("+json"))


def parse_body(model: type[Model], raw: bytes, content_type: str | None) -> Model:
    """``raw`` as a ``model``, validated as FastAPI validates a JSON body parameter, or the same
    ``RequestValidationError`` (so the same 422 answer): a missing body, a body that is not
    JSON by its content type, malformed JSON and every field error each give one."""
    if not raw:
        problem = {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}
        raise RequestValidationError([problem])
    if not _is_json(content_type):
        problem = {"type": "model_attributes_type", "loc": ("body",), "input": None,
                   "msg": "Input should be a JSON object sent as 'content-type: application/json'"}
        raise RequestValidationError([problem])
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        problems = exc.errors(include_url=False, include_input=False)
        raise RequestValidationError(
            [{**p, "loc": ("body", *p["loc"])} for p in problems]
        ) from None


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
    redact: bool = Field(False, description="Replace PII (e-mail, phone, card, IP, URL "
                         "credentials) in every text written to the collection.")


class ItemBody(_Strict):
    id: Annotated[str, Field(min_length=1, max_length=512)]
    text: str = Field(min_length=1)
    metadata: dict[str, Any] = Field(default_factory=dict)


class ItemsUpsert(_Strict):
    items: list[ItemBody] = Field(min_length=1)


class ItemsDelete(_Strict):
    ids: list[Annotated[str, Field(min_length=1, max_length=512)]] = Field(min_length=1)


class ItemsWhere(_Strict):
    filters: dict[str, Any] = Field(
        default_factory=dict,
        description="Metadata filters, as in search; empty: every live item.")
    limit: int = Field(1000, ge=1, le=10_000, description="At most this many ids.")
    offset: int = Field(0, ge=0, description="Skip this many matching ids first.")


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
    search_params: dict[str, StrictInt] | None = Field(
        None,
        description='Index knobs for this query only: {"ef_search": n} (hnsw), {"nprobe": n} '
        '(ivf, ivfpq), {"rescore_factor": n} (ivfpq, sq8). Not for lexical search.',
    )


class IndexBuild(_Strict):
    kind: Literal["flat", "hnsw", "ivf", "ivfpq", "sq8"] = "hnsw"
    params: dict[str, Any] | None = None
    model_version: Ref | None = None
