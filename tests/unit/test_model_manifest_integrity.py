"""A model's manifest.json is sealed (issue 21, item 7): an edited tokenizer spec, dim or file
checksum is refused on load instead of being used silently; ``record_eval`` re-seals; legacy
unsealed manifests are accepted with a warning."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from embedops.config import Workspace
from embedops.errors import IntegrityError
from embedops.models.registry import MANIFEST, Registry
from embedops.models.static import StaticVectors, publish_static
from embedops.text.tokenize import TokenizerSpec


def _table(n: int = 6, dim: int = 4) -> StaticVectors:
    rng = np.random.default_rng(0)
    return StaticVectors([f"w{i}" for i in range(n)], rng.standard_normal((n, dim)))


@pytest.fixture
def toy(registry: Registry):
    return publish_static(registry, "toy", _table(), kind="word2vec", spec=TokenizerSpec())


def edit(path: Path, change: Callable[[dict], None]) -> None:
    manifest = json.loads((path / MANIFEST).read_text())
    change(manifest)
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


EDITS: dict[str, Callable[[dict], None]] = {
    "tokenizer lowercase": lambda m: m["tokenizer"].__setitem__("lowercase", False),
    "tokenizer fingerprint": lambda m: m.__setitem__("tokenizer_fingerprint", "0" * 16),
    "dim": lambda m: m.__setitem__("dim", 8),
    "kind": lambda m: m.__setitem__("kind", "fasttext"),
    "file checksum": lambda m: m["files"].__setitem__(next(iter(m["files"])), "0" * 64),
    "eval score": lambda m: m["eval"].__setitem__("wordsim353", {"spearman": 0.99}),
    "extra key": lambda m: m.__setitem__("note", "x"),
    "seal of another body": lambda m: m.__setitem__("seal", "sha256:" + "0" * 64),
}


def test_a_published_manifest_carries_a_seal(toy) -> None:
    manifest = json.loads((toy.path / MANIFEST).read_text())
    assert manifest["seal"].startswith("sha256:") and len(manifest["seal"]) == 71
    assert toy.manifest["seal"] == manifest["seal"]


@pytest.mark.parametrize("change", sorted(EDITS))
def test_an_edited_manifest_is_refused_on_load(registry: Registry, toy, change: str) -> None:
    edit(toy.path, EDITS[change])
    for call in (lambda: registry.get("toy@1"), lambda: registry.get("toy"),
                 lambda: registry.get("toy@1", verify=True), lambda: registry.list("toy")):
        with pytest.raises(IntegrityError, match="toy@1.*seal") as err:
            call()
        assert "models delete toy@1" in str(err.value)


def test_a_whitespace_only_edit_is_refused_too(registry: Registry, toy) -> None:
    data = json.loads((toy.path / MANIFEST).read_text())
    (toy.path / MANIFEST).write_text(json.dumps(data, sort_keys=True))
    with pytest.raises(IntegrityError, match="seal"):
        registry.get("toy@1")


@pytest.mark.parametrize(
    "damage",
    [lambda b: b[: len(b) // 2], lambda b: b"\xff\xfe" + b[2:], lambda b: b"", lambda b: b"[]"],
)
def test_a_damaged_manifest_is_an_integrity_error(registry: Registry, toy, damage) -> None:
    path = toy.path / MANIFEST
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(IntegrityError, match="toy@1"):
        registry.get("toy@1")


def test_record_eval_reseals_and_refuses_a_tampered_manifest(registry: Registry, toy) -> None:
    registry.record_eval("toy@1", "probe", {"score": 0.5})
    again = Registry(registry.workspace).get("toy@1", verify=True)
    assert again.manifest["eval"]["probe"] == {"score": 0.5}
    edit(toy.path, EDITS["tokenizer lowercase"])
    with pytest.raises(IntegrityError, match="seal"):
        registry.record_eval("toy@1", "probe", {"score": 0.7})


def test_a_legacy_unsealed_manifest_is_accepted_with_a_warning_and_can_be_sealed(
    registry: Registry, toy, caplog: pytest.LogCaptureFixture
) -> None:
    edit(toy.path, lambda m: m.pop("seal"))
    with caplog.at_level(logging.WARNING, logger="embedops.models.registry"):
        legacy = registry.get("toy@1", verify=True)
    assert "seal" not in legacy.manifest and legacy.dim == 4
    assert any("unsealed" in r.getMessage() for r in caplog.records)
    sealed = registry.seal("toy@1")
    assert sealed.manifest["seal"].startswith("sha256:")
    edit(toy.path, EDITS["dim"])
    with pytest.raises(IntegrityError, match="seal"):
        registry.get("toy@1")


def test_record_eval_seals_a_legacy_manifest(registry: Registry, toy) -> None:
    edit(toy.path, lambda m: m.pop("seal"))
    registry.record_eval("toy@1", "probe", {"score": 1.0})
    assert "seal" in registry.get("toy@1").manifest


def test_embed_refuses_a_model_with_an_edited_tokenizer(workspace: Workspace, toy) -> None:
    from embedops.api import Embedops

    edit(toy.path, EDITS["tokenizer lowercase"])
    api = Embedops(workspace)
    try:
        with pytest.raises(IntegrityError, match="toy@1"):
            api.embed(["w1 w2"], model="toy")
    finally:
        api.close()
