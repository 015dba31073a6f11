"""The server's error envelope back to the ``embedops.errors`` class the engine raised.

The map is built from the classes themselves (every subclass of ``EmbedopsError`` with its own
``code``), so an error class added later is mapped without touching this module. A code no
class claims falls back to the most general class of the answer's HTTP status, and to
``EmbedopsError`` itself (with the status and code of the answer) when there is none or several.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Any

import httpx

from embedops.errors import EmbedopsError

# Modules outside ``embedops.errors`` that define error classes of their own; imported only
# when an answer's code is not claimed by a class already imported (they are slow to import).
_ERROR_MODULES = ("embedops.lifecycle.rollout", "embedops.monitor.golden",
                  "embedops.serve.ratelimit")


def _subclasses(root: type[EmbedopsError]) -> list[type[EmbedopsError]]:
    """``root`` and every subclass, parents before children."""
    out, todo = [], [root]
    while todo:
        cls = todo.pop(0)
        out.append(cls)
        todo.extend(cls.__subclasses__())
    return out


def _by_code() -> dict[str, type[EmbedopsError]]:
    """code -> the class that declares it (the first, most general one, wins)."""
    out: dict[str, type[EmbedopsError]] = {}
    for cls in _subclasses(EmbedopsError):
        out.setdefault(cls.code, cls)
    return out


def _by_status(status: int) -> type[EmbedopsError] | None:
    """The one most general class answering ``status``; None when none or several do."""
    roots = {
        cls for cls in _subclasses(EmbedopsError)
        if cls.http_status == status
        and not any(getattr(base, "http_status", None) == status for base in cls.__bases__)
    }
    return roots.pop() if len(roots) == 1 else None


def error_class(code: str | None, status: int) -> type[EmbedopsError] | None:
    """The class of an answer with ``code`` and ``status`` (None: no class fits)."""
    if code:
        cls = _by_code().get(code)
        if cls is None:
            for module in _ERROR_MODULES:
                with contextlib.suppress(ImportError):
                    importlib.import_module(module)
            cls = _by_code().get(code)
        if cls is not None and cls.http_status == status:
            return cls
    return _by_status(status)


def build_error(status: int, code: str | None, message: str,
                extra: dict[str, Any] | None = None) -> EmbedopsError:
    """The ``EmbedopsError`` the server raised, rebuilt from its answer.

    The message is the server's (its hint already folded in). Classes whose constructor takes
    other arguments (``OutOfVocabulary``) are built without calling it; fields of the envelope
    beyond code and message become attributes."""
    cls = error_class(code, status) or EmbedopsError
    exc = cls.__new__(cls)
    EmbedopsError.__init__(exc, message)
    if cls is EmbedopsError or cls.code != code:
        exc.http_status, exc.code = status, code or cls.code
    for key, value in (extra or {}).items():
        if key not in ("code", "message") and not hasattr(exc, key):
            setattr(exc, key, value)
    return exc


def from_response(response: httpx.Response) -> EmbedopsError:
    """The error of a 4xx/5xx answer, read from ``{"error": {"code", "message", ...}}`` when
    the body has that shape (OpenAI's envelope too), else from the status and the raw text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = error.get("code")
        message = str(error.get("message") or f"HTTP {response.status_code}")
        exc = build_error(response.status_code, code if isinstance(code, str) else None,
                          message, error)
        wait = response.headers.get("retry-after")
        if wait and not hasattr(exc, "retry_after"):
            with contextlib.suppress(ValueError):
                setattr(exc, "retry_after", float(wait))  # noqa: B010 - not declared by all
        return exc
    text = response.text.strip()[:300] or response.reason_phrase
    return build_error(response.status_code, None,
                       f"HTTP {response.status_code} from {response.request.url}: {text}")
