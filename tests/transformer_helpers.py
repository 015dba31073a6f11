"""One MiniLM import (with its ONNX files) and one encoder per backend, shared by a test run.

Importing MiniLM and exporting it to ONNX takes seconds, so transformer tests share one
read-only workspace per process; tests that change files make their own version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from embedops.config import Workspace
from embedops.models.registry import ModelVersion, Registry

_CACHE: dict[str, Any] = {}


def shared_minilm(factory: pytest.TempPathFactory) -> ModelVersion:
    """MiniLM imported once per test process into its own workspace."""
    if "mv" not in _CACHE:
        from embedops.models.transformer import import_transformer

        ws = Workspace(factory.mktemp("minilm-ws")).ensure()
        _CACHE["mv"] = import_transformer(Registry(ws), "minilm")
    return _CACHE["mv"]


def shared_encoder(factory: pytest.TempPathFactory, backend: str) -> Any:
    """A TransformerEncoder of the shared MiniLM version for ``backend``, built once."""
    key = f"enc:{backend}"
    if key not in _CACHE:
        from embedops.models.transformer import TransformerEncoder

        _CACHE[key] = TransformerEncoder.from_version(shared_minilm(factory), backend=backend)
    return _CACHE[key]


def workspace_of(mv: ModelVersion) -> Path:
    """The workspace home that holds ``mv`` (``<home>/models/<name>/<version>``)."""
    return mv.path.parents[2]


def lee_sentences(n: int) -> list[str]:
    """``n`` real English lines of varied length from gensim's Lee corpus."""
    from gensim.test.utils import datapath

    lines = Path(datapath("lee_background.cor")).read_text(encoding="utf-8").splitlines()
    out: list[str] = []
    for line in lines:
        out.extend(s.strip() for s in line.split(". ") if s.strip())
    return out[:n]
