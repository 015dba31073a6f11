"""The layering of DESIGN.md, checked on the import graph: calls go down only.

base → stages → engine → loop (monitor, lifecycle) → shells (cli, serve, client, integrations).
A stage never imports the engine, the loop or a shell; the engine never imports the loop or a
shell; the loop never imports a shell; a shell imports stages only through the engine (its
``options`` module re-exports the settings types a caller passes in; the plain data types
of answers and records are shared by every layer). Nothing outside the
engine touches the engine's private parts (``_catalog``, ``_indexes``, ``_hub``, ``_registry``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "embedops"
BASE = {"errors", "types", "config", "fsio", "progress", "data", "logs"}
STAGES = {"text", "models", "train", "vectors", "store", "index", "search", "evaluate"}
LOOP = {"monitor", "lifecycle", "usecases"}
# The package root and embedops.api only re-export the engine for ``from embedops import ...``.
SHELLS = {"cli", "serve", "client", "integrations", "__init__", "api"}
# Plain data types (answers and records) that every layer may name, shells included.
SHARED_TYPES = {"embedops.search.models", "embedops.store.models"}
PRIVATE = ("._catalog", "._indexes", "._hub", "._registry", "._searcher", "._writer")


def _layer(top: str) -> str:
    if top in BASE:
        return "base"
    if top in STAGES:
        return "stage"
    if top == "engine":
        return "engine"
    if top in LOOP:
        return "loop"
    if top in SHELLS:
        return "shell"
    raise AssertionError(f"package embedops.{top} has no layer in this test; add it")


FORBIDDEN = {
    "base": {"stage", "engine", "loop", "shell"},
    "stage": {"engine", "loop", "shell"},
    "engine": {"loop", "shell"},
    "loop": {"shell"},
    "shell": {"stage"},
}


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py"))


def _top(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        out += [(node.lineno, n) for n in names if n.split(".")[0] == "embedops"]
    return out


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_go_down_only(path: Path) -> None:
    here = _layer(_top(path))
    wrong = []
    for line, name in _imports(path):
        parts = name.split(".")
        if len(parts) < 2 or name in SHARED_TYPES:
            continue
        there = _layer(parts[1])
        if there in FORBIDDEN[here]:
            wrong.append(f"line {line}: {here} imports {there} ({name})")
    assert not wrong, f"{path.relative_to(SRC)}: " + "; ".join(wrong)


@pytest.mark.parametrize("path", [p for p in _modules() if _top(p) != "engine"],
                         ids=lambda p: str(p.relative_to(SRC)))
def test_nothing_outside_the_engine_touches_its_parts(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    found = [part for part in PRIVATE if part + "." in text or part + ")" in text]
    assert not found, f"{path.relative_to(SRC)} reaches into the engine: {found}"
