"""Quantization: round trips, calibration, similarity per method, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

from embedops.errors import DimensionMismatch, InvalidInput
from embedops.vectors import (
    Int8Calibration,
    Quantization,
    bytes_per_vector,
    dequantize,
    l2_normalize,
    quantize,
    similarity,
)


@pytest.fixture
def unit_rows() -> np.ndarray:
    rng = np.random.default_rng(7)
    return l2_normalize(rng.normal(size=(300, 64)).astype(np.float32))


def test_float16_round_trip_is_close(unit_rows: np.ndarray) -> None:
    q = quantize(unit_rows, Quantization.FLOAT16)
    assert q.codes.dtype == np.float16 and q.nbytes == unit_rows.nbytes // 2
    np.testing.assert_allclose(dequantize(q), unit_rows, atol=1e-3)


def test_int8_stays_within_one_step_and_keeps_calibration(unit_rows: np.ndarray) -> None:
    q = quantize(unit_rows, Quantization.INT8)
    assert q.codes.dtype == np.int8 and q.calibration is not None
    err = np.abs(dequantize(q) - unit_rows)
    assert (err <= q.calibration.scale / 2 + 1e-6).all()


def test_int8_calibration_save_load(tmp_path, unit_rows: np.ndarray) -> None:
    cal = Int8Calibration.fit(unit_rows, clip_percentile=1.0)
    cal.save(tmp_path)
    back = Int8Calibration.load(tmp_path)
    np.testing.assert_array_equal(back.lo, cal.lo)
    q1, q2 = (
        quantize(unit_rows, Quantization.INT8, cal),
        quantize(unit_rows, Quantization.INT8, back),
    )
    np.testing.assert_array_equal(q1.codes, q2.codes)


def test_binary_packs_signs_and_scores_by_hamming(unit_rows: np.ndarray) -> None:
    q = quantize(unit_rows, Quantization.BINARY)
    assert q.codes.shape == (300, 8) and q.nbytes == 300 * 8
    signs = np.where(unit_rows > 0, 1.0, -1.0)
    np.testing.assert_array_equal(dequantize(q), signs)
    scores = similarity(unit_rows[:5], q)
    np.testing.assert_allclose(scores, signs[:5] @ signs.T / 64, atol=1e-6)
    assert np.allclose(np.diag(scores[:, :5]), 1.0)


@pytest.mark.parametrize("method", list(Quantization))
def test_quantized_search_finds_each_row_itself(method: Quantization, unit_rows) -> None:
    q = quantize(unit_rows, method)
    top = np.argmax(similarity(unit_rows, q), axis=1)
    assert (top == np.arange(len(unit_rows))).mean() > 0.97


def test_bytes_per_vector() -> None:
    assert [bytes_per_vector(m, 100) for m in Quantization] == [400, 200, 100, 13]


@pytest.mark.parametrize(
    "bad",
    [np.zeros(5), np.array([[np.nan, 1.0]]), np.array([["a", "b"]]), np.zeros((2, 2, 2))],
)
def test_bad_matrices_are_refused(bad) -> None:
    with pytest.raises(InvalidInput):
        quantize(bad, Quantization.INT8)


def test_calibration_of_other_dim_is_refused(unit_rows: np.ndarray) -> None:
    cal = Int8Calibration.fit(unit_rows[:, :10])
    with pytest.raises(DimensionMismatch, match="dim 10"):
        quantize(unit_rows, Quantization.INT8, cal)
    with pytest.raises(DimensionMismatch):
        similarity(unit_rows[:, :10], quantize(unit_rows, Quantization.FLOAT16))


def test_unknown_quantization_names_the_choices() -> None:
    with pytest.raises(InvalidInput, match="float16, int8, binary"):
        Quantization.parse("int4")
    with pytest.raises(InvalidInput):
        Int8Calibration.fit(np.zeros((0, 3), dtype=np.float32))
