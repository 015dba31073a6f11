"""Page 3, words: nearest words, similarity and analogy in a static model, with the close
in-vocabulary spellings the engine suggests for a word it does not know."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from embedops.errors import EmbedopsError, OutOfVocabulary
from embedops.serve.console.forms import Form
from embedops.serve.console.render import page
from embedops.serve.console.session import Viewer

router = APIRouter()
OPERATIONS = ("neighbours", "similarity", "analogy")
WORD_CHARS = 100


def default_model(models: list[Any]) -> str:
    """The model the form starts with: the first that is not a transformer (word queries
    need a static one; the engine says so if the choice is wrong)."""
    for mv in models:
        if "transformer" not in mv.kind:
            return str(mv.ref)
    return str(models[0].ref) if models else ""


def run(api: Any, form: Form, model: str, op: str) -> dict[str, Any]:
    """The answer of one word query."""
    k = form.integer("k", 10, 1, 100) or 10
    if op == "neighbours":
        word = form.text("word", required=True, label="word", max_chars=WORD_CHARS)
        return {"pairs": api.neighbours(model, word, k), "word": word}
    if op == "similarity":
        a = form.text("a", required=True, label="word a", max_chars=WORD_CHARS)
        b = form.text("b", required=True, label="word b", max_chars=WORD_CHARS)
        return {"similarity": api.similarity(model, a, b), "a": a, "b": b}
    a, b, c = (form.text(n, required=True, label=f"word {n}", max_chars=WORD_CHARS)
               for n in ("a", "b", "c"))
    return {"pairs": api.analogy(model, a, b, c, k), "a": a, "b": b, "c": c}


def _context(request: Request, who: Viewer, form: Form) -> tuple[str, dict[str, Any]]:
    api = request.app.state.ctx.api
    models = api.models.list()
    values = dict(form.values())
    values.setdefault("model", default_model(models))
    context: dict[str, Any] = {"title": "Words", "models": models, "values": values,
                               "operations": OPERATIONS, "answer": None, "error": None,
                               "suggestions": []}
    op_raw = form.raw("op")
    if op_raw is None:
        return "words.html", context
    try:
        op = form.choice("op", OPERATIONS, "neighbours", "operation")
        model = api.models.resolve(form.text("model", required=True, label="model",
                                             max_chars=200)).ref
        context["answer"] = {"op": op, "model": model, **run(api, form, model, op)}
    except OutOfVocabulary as exc:
        context["error"], context["suggestions"] = exc, exc.suggestions
    except EmbedopsError as exc:
        context["error"] = exc
    return "words.html", context


@router.get("/words", include_in_schema=False)
def words(request: Request) -> Response:
    """The words page; with ``op`` set, the answer under the forms."""
    form = Form.of_query(request)
    return page(request, lambda who: _context(request, who, form))
