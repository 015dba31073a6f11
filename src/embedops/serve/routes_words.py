"""Static word-vector queries: neighbours, similarity, analogy (GET with a query string or POST)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from embedops.serve.auth import READ
from embedops.serve.limits import check_k
from embedops.serve.openapi import AUTH, BODY, errors
from embedops.serve.respond import named
from embedops.serve.schemas import AnalogyRequest, NeighboursRequest, SimilarityRequest

router = APIRouter(prefix="/v1/words", tags=["words"], responses=errors(*AUTH, *BODY, 404, 409))


def _model(ctx: Any, model: str | None) -> str:
    api = ctx.api
    return str(api.models.resolve(model or api.default_model()).ref)


def _pairs(pairs: list[tuple[str, float]]) -> list[dict[str, Any]]:
    return [{"word": w, "score": float(s)} for w, s in pairs]


def _neighbours(request: Request, response: Response, q: NeighboursRequest) -> dict[str, Any]:
    ctx = request.app.state.ctx
    check_k(ctx.settings, q.k)
    version = _model(ctx, q.model)
    pairs = ctx.api.neighbours(version, q.word, q.k)
    return named(response, version, {"word": q.word, "neighbours": _pairs(pairs)})


def _similarity(request: Request, response: Response, q: SimilarityRequest) -> dict[str, Any]:
    ctx = request.app.state.ctx
    version = _model(ctx, q.model)
    score = ctx.api.similarity(version, q.a, q.b)
    return named(response, version, {"a": q.a, "b": q.b, "similarity": score})


def _analogy(request: Request, response: Response, q: AnalogyRequest) -> dict[str, Any]:
    ctx = request.app.state.ctx
    check_k(ctx.settings, q.k)
    version = _model(ctx, q.model)
    pairs = ctx.api.analogy(version, q.a, q.b, q.c, q.k)
    return named(response, version, {"a": q.a, "b": q.b, "c": q.c, "results": _pairs(pairs)})


@router.get("/neighbours", summary="Nearest words")
def neighbours_get(
    request: Request, response: Response, q: NeighboursRequest = Depends(), _: Any = READ  # noqa: B008
) -> Any:
    """The ``k`` words closest to ``word`` (cosine)."""
    return _neighbours(request, response, q)


@router.post("/neighbours", summary="Nearest words")
def neighbours_post(
    request: Request, response: Response, body: NeighboursRequest, _: Any = READ
) -> Any:
    """The ``k`` words closest to ``word`` (cosine)."""
    return _neighbours(request, response, body)


@router.get("/similarity", summary="Cosine similarity of two words")
def similarity_get(
    request: Request, response: Response, q: SimilarityRequest = Depends(), _: Any = READ  # noqa: B008
) -> Any:
    """Cosine similarity of ``a`` and ``b``."""
    return _similarity(request, response, q)


@router.post("/similarity", summary="Cosine similarity of two words")
def similarity_post(
    request: Request, response: Response, body: SimilarityRequest, _: Any = READ
) -> Any:
    """Cosine similarity of ``a`` and ``b``."""
    return _similarity(request, response, body)


@router.get("/analogy", summary="a is to b as c is to ?")
def analogy_get(
    request: Request, response: Response, q: AnalogyRequest = Depends(), _: Any = READ  # noqa: B008
) -> Any:
    """Words ``d`` with ``b - a + c ≈ d`` (3CosAdd), best first."""
    return _analogy(request, response, q)


@router.post("/analogy", summary="a is to b as c is to ?")
def analogy_post(request: Request, response: Response, body: AnalogyRequest, _: Any = READ) -> Any:
    """Words ``d`` with ``b - a + c ≈ d`` (3CosAdd), best first."""
    return _analogy(request, response, body)
