"""The model registry: atomic publish, increasing versions, verification, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from embedops.errors import IntegrityError, InvalidInput, ModelNotFound
from embedops.models.registry import Registry, parse_ref
from embedops.models.static import StaticVectors, publish_static
from embedops.text.tokenize import TokenizerSpec


def _table(n: int = 5, dim: int = 4) -> StaticVectors:
    rng = np.random.default_rng(0)
    return StaticVectors([f"w{i}" for i in range(n)], rng.standard_normal((n, dim)))


def test_publish_roundtrip_and_versions_increase(registry: Registry) -> None:
    spec = TokenizerSpec()
    first = publish_static(registry, "toy", _table(), kind="word2vec", spec=spec)
    second = publish_static(registry, "toy", _table(), kind="word2vec", spec=spec)
    assert (first.ref, second.ref) == ("toy@1", "toy@2")
    assert registry.get("toy").ref == "toy@2"
    registry.delete("toy@2")
    assert publish_static(registry, "toy", _table(), kind="word2vec", spec=spec).ref == "toy@3"
    loaded = StaticVectors.read(registry.get("toy@1"))
    np.testing.assert_array_equal(loaded.vectors, _table().vectors)
    assert first.manifest["tokenizer_fingerprint"] == spec.fingerprint()


def test_failed_draft_publishes_nothing(registry: Registry) -> None:
    with pytest.raises(RuntimeError), registry.draft("broken", "word2vec", dim=3) as draft:
        (draft.path / "half.bin").write_bytes(b"x")
        raise RuntimeError("killed midway")
    assert registry.list() == []
    assert list(registry.workspace.staging_dir.iterdir()) == []


def test_tampered_file_fails_verification(registry: Registry) -> None:
    mv = publish_static(registry, "toy", _table(), kind="word2vec", spec=TokenizerSpec())
    path = mv.path / "vectors.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="toy@1"):
        StaticVectors.read(registry.get("toy@1"))


def test_unknown_model_and_version_errors(registry: Registry) -> None:
    with pytest.raises(ModelNotFound, match="no model named 'nope'"):
        registry.get("nope")
    publish_static(registry, "toy", _table(), kind="word2vec", spec=TokenizerSpec())
    with pytest.raises(ModelNotFound, match=r"versions: \[1\]"):
        registry.get("toy@7")
    with pytest.raises(InvalidInput):
        registry.delete("toy")


@pytest.mark.parametrize("bad", ["", "a b", "../x", "x@0", "x@two", "-lead"])
def test_bad_refs_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        parse_ref(bad)


def test_record_eval_keeps_files_verified(registry: Registry) -> None:
    publish_static(registry, "toy", _table(), kind="word2vec", spec=TokenizerSpec())
    mv = registry.record_eval("toy@1", "wordsim353", {"spearman": 0.5})
    assert mv.manifest["eval"]["wordsim353"]["spearman"] == 0.5
    registry.get("toy@1", verify=True)
