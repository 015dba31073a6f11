"""Static word-vector queries: neighbours, similarity, analogy (GET with a query string or POST)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from embedops.serve.auth import READ
from embedops.serve.limits import check_k
from embedops.serve.respond import as_dict, named
from embedops.serve.schemas import AnalogyRequest, NeighboursRequest, SimilarityRequest

router = APIRouter(prefix="/v1/words", tags=["words"])


def _answer(response: Response, result: Any) -> dict[str, Any]:
    body = dict(as_dict(result))
    return named(response, body.pop("model_version", None), body)


def _neighbours(request: Request, response: Response, q: NeighboursRequest) -> dict[str, Any]:
    ctx = request.app.state.ctx
    check_k(ctx.settings, q.k)
    return _answer(response, ctx.api.neighbours(q.word, model=q.model, k=q.k))


def _similarity(request: Request, response: Response, q: SimilarityRequest) -> dict[str, Any]:
    return _answer(response, request.app.state.ctx.api.similarity(q.a, q.b, model=q.model))


def _analogy(request: Request, response: Response, q: AnalogyRequest) -> dict[str, Any]:
    ctx = request.app.state.ctx
    check_k(ctx.settings, q.k)
    return _answer(response, ctx.api.analogy(q.a, q.b, q.c, model=q.model, k=q.k))


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
