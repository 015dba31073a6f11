"""Request and response shapes of the OpenAI-compatible routes (``serve.routes_openai``), as
OpenAI's API reference and its ``openai`` SDK define them.

The request is validated strictly (no coercion: ``1`` is not the text ``"1"``, ``true`` is not
a token id) and an unknown field is refused, as OpenAI refuses it, so that a misspelt
``dimension`` is an error rather than silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

from embedops.serve.schemas import Ref

TokenId = Annotated[StrictInt, Field(ge=0, le=2**31 - 1)]
EmbeddingInput = StrictStr | list[StrictStr] | list[TokenId] | list[list[TokenId]]

_INPUT_FORMS = ("a string, a list of strings, a list of token ids or a list of token-id lists")


def _kind(value: Any) -> type | None:
    """The input form ``value`` belongs to (str, int or list), None for anything else."""
    if isinstance(value, str):
        return str
    if isinstance(value, int) and not isinstance(value, bool):
        return int
    return list if isinstance(value, list) else None


def check_input(value: Any) -> Any:
    """One clear message for an input of no accepted form, instead of one error per form."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise ValueError(f"input must be {_INPUT_FORMS}")
    if not value:
        raise ValueError("input is an empty list; send at least one text")
    kind = _kind(value[0])
    for pos, item in enumerate(value):
        if kind is None or _kind(item) is not kind:
            raise ValueError(f"input[{pos}] does not match input[0]; input must be {_INPUT_FORMS}")
        if kind is list and not item:
            raise ValueError(f"input[{pos}] is an empty token-id list")
        if kind is list and not all(_kind(t) is int for t in item):
            raise ValueError(f"input[{pos}] holds something other than integer token ids")
    return value


class EmbeddingsRequest(BaseModel):
    """``POST /v1/embeddings``: OpenAI's request body."""

    model_config = ConfigDict(extra="forbid")

    input: EmbeddingInput = Field(
        description="What to embed: a string, a list of strings, a list of token ids (one "
        "input) or a list of token-id lists. Token ids are decoded with the model's own "
        "tokenizer (transformer models; static models have none and answer 400). An empty "
        "string gets the zero vector.",
        examples=["The food was delicious.", ["first text", "second text"]],
    )
    model: Ref = Field(description="An embedops model: `name` (its latest version), `name@N` or "
                       "`name@latest`; `GET /v1/models` lists them.")
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="`float`: lists of numbers; `base64`: each vector's little-endian "
        "float32 bytes, base64-encoded (what OpenAI's SDKs request and decode by default).")
    dimensions: Annotated[StrictInt, Field(ge=1)] | None = Field(
        None, description="Cut vectors to their first `dimensions` components and L2-normalize "
        "them again (Matryoshka). Any model takes its own dim; only a model whose manifest sets "
        "`matryoshka: true` takes 1..dim, others answer 400.")
    user: Annotated[str, Field(max_length=256)] | None = Field(
        None, description="An end-user id; only its sha256 is logged.")

    _input = field_validator("input", mode="before")(check_input)


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="The vector (a base64 string when "
                                         "`encoding_format` is `base64`).")


class Usage(BaseModel):
    prompt_tokens: int = Field(description="Tokens of every input, counted by the model's own "
                               "tokenizer (see the route's description).")
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    """``POST /v1/embeddings``: OpenAI's answer; ``model`` is the exact version that served it."""

    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str = Field(description="The model version that made the vectors (`name@N`).")
    usage: Usage


class ModelCard(BaseModel):
    """One model version as OpenAI's ``Model`` object, plus embedops' summary fields."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(description="The version's reference, `name@N`.")
    object: Literal["model"] = "model"
    created: int = Field(description="When the version was published (Unix seconds).")
    owned_by: str = "embedops"


class ModelList(BaseModel):
    """``GET /v1/models``: OpenAI's list in ``data``; the same versions in embedops' own shape
    (``ref`` and manifest summary) in ``models``."""

    object: Literal["list"] = "list"
    data: list[ModelCard]
    models: list[dict[str, Any]]


class ErrorDetail(BaseModel):
    message: str
    type: str = Field(description="invalid_request_error, authentication_error, "
                      "permission_error, rate_limit_error or server_error")
    param: str | None = Field(description="The request field at fault, when one is.")
    code: str | None = Field(description="embedops' error code (e.g. model_not_found).")


class ErrorResponse(BaseModel):
    """OpenAI's error envelope, answered by every OpenAI-compatible route."""

    error: ErrorDetail
