"""Post-processing: normalize, PCA (fit, save, load, refused for another model), truncate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embedops.errors import DimensionMismatch, FormatError, InvalidInput, NotFound, VersionMismatch
from embedops.models.registry import Registry
from embedops.vectors import (
    Postprocess,
    fit_pca,
    l2_normalize,
    load_pca,
    parse_step,
    save_pca,
    supports_matryoshka,
    truncate,
)


@pytest.fixture
def rows() -> np.ndarray:
    rng = np.random.default_rng(3)
    basis = rng.normal(size=(8, 32))
    return (rng.normal(size=(500, 8)) @ basis + 0.01 * rng.normal(size=(500, 32))).astype(
        np.float32
    )


def _publish(registry: Registry, name: str, **manifest) -> str:
    with registry.draft(name, "static", dim=32, **manifest) as draft:
        (draft.path / "x.bin").write_bytes(b"x")
    assert draft.published is not None
    return draft.published.ref


def test_l2_normalize_keeps_zero_rows() -> None:
    out = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])


def test_pca_keeps_the_variance_of_a_low_rank_table(rows: np.ndarray) -> None:
    state = fit_pca(rows, 8, "m@1")
    centered = rows - rows.mean(axis=0)
    back = state.apply(rows, "m@1") @ state.components
    assert np.linalg.norm(back - centered) / np.linalg.norm(centered) < 0.01
    assert (np.diff(state.explained_variance) <= 0).all()
    again = fit_pca(rows, 8, "m@1")
    np.testing.assert_allclose(again.components, state.components, atol=1e-5)


def test_pca_saved_next_to_the_model_and_refused_for_another(registry, rows) -> None:
    ref = _publish(registry, "m")
    other = _publish(registry, "other")
    path = save_pca(registry, fit_pca(rows, 4, ref))
    assert path.parent.name == "1" and (path / "pca.json").exists()
    state = load_pca(registry, ref, 4)
    assert json.loads((path / "pca.json").read_text())["model_ref"] == "m@1"
    np.testing.assert_allclose(
        state.apply(rows, ref), fit_pca(rows, 4, ref).apply(rows, ref), atol=1e-4
    )
    with pytest.raises(VersionMismatch, match="fitted for m@1.*from other@1"):
        state.apply(rows, other)
    with pytest.raises(DimensionMismatch):
        state.apply(rows[:, :10], ref)
    with pytest.raises(NotFound, match="no PCA to 8 dims"):
        load_pca(registry, ref, 8)
    save_pca(registry, fit_pca(rows[:100], 4, ref))  # refit replaces the old one
    (path / "pca.safetensors").write_bytes(b"garbage")
    with pytest.raises(FormatError):
        load_pca(registry, ref, 4)


def test_truncate_needs_a_matryoshka_model(registry, rows) -> None:
    plain = registry.get(_publish(registry, "plain"))
    mat = registry.get(_publish(registry, "mat", matryoshka=True))
    assert not supports_matryoshka(plain) and supports_matryoshka(mat)
    out = truncate(rows, 16, matryoshka=True)
    assert out.shape == (500, 16)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    with pytest.raises(InvalidInput, match="not Matryoshka"):
        truncate(rows, 16, matryoshka=False, model_ref="plain@1")
    with pytest.raises(InvalidInput, match="to 64"):
        truncate(rows, 64, matryoshka=True)


def test_postprocess_config_round_trips_and_applies(rows) -> None:
    cfg = Postprocess.from_steps(["pca:4", "int8"])
    assert Postprocess(**json.loads(json.dumps(cfg.to_dict()))) == cfg
    out = cfg.apply(rows, "m@1", pca=fit_pca(rows, 4, "m@1"))
    assert out.shape == (500, 4)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    with pytest.raises(InvalidInput, match="needs a PCA to 4"):
        cfg.apply(rows, "m@1")
    with pytest.raises(VersionMismatch):
        cfg.apply(rows, "n@1", pca=fit_pca(rows, 4, "m@1"))


@pytest.mark.parametrize(
    "bad",
    ["", "   ", None, 3, "pca", "pca:0", "pca:x", "int4", "float16:2", "truncate:-1"],
)
def test_bad_steps_are_refused(bad) -> None:
    with pytest.raises(InvalidInput):
        parse_step(bad)


@pytest.mark.parametrize(
    "fields",
    [
        {"pca_dim": 0},
        {"pca_dim": "8"},
        {"truncate_dim": True},
        {"normalize": "yes"},
        {"quantization": "int4"},
        {"quantization": None},
    ],
)
def test_bad_config_values_are_refused(fields) -> None:
    with pytest.raises(InvalidInput):
        Postprocess(**fields)


def test_steps_parse() -> None:
    assert parse_step("none") == {}
    assert parse_step("PCA:128") == {"pca_dim": 128}
    assert parse_step("truncate:256") == {"truncate_dim": 256}
    assert parse_step("binary") == {"quantization": "binary"}
