"""Properties of quantization: bounded error, order preserved, binary similarity is symmetric."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from embedops.vectors import Quantization, dequantize, quantize, similarity

_floats = st.floats(-100, 100, allow_nan=False, width=32)
_matrix = st.integers(1, 40).flatmap(
    lambda n: st.integers(1, 33).flatmap(lambda d: arrays(np.float32, (n, d), elements=_floats))
)


@settings(max_examples=60, deadline=None)
@given(_matrix)
def test_int8_error_is_at_most_half_a_step(x: np.ndarray) -> None:
    q = quantize(x, Quantization.INT8)
    assert q.calibration is not None
    assert (np.abs(dequantize(q) - x) <= q.calibration.scale / 2 * 1.001 + 1e-4).all()


@settings(max_examples=60, deadline=None)
@given(_matrix)
def test_float16_keeps_the_sign_and_is_relatively_close(x: np.ndarray) -> None:
    back = dequantize(quantize(x, Quantization.FLOAT16))
    mask = np.abs(x) > 1e-4
    assert (np.sign(back[mask]) == np.sign(x[mask])).all()
    np.testing.assert_allclose(back, x, rtol=1e-3, atol=1e-4)


@settings(max_examples=60, deadline=None)
@given(_matrix)
def test_binary_similarity_is_symmetric_and_bounded(x: np.ndarray) -> None:
    q = quantize(x, Quantization.BINARY)
    s = similarity(x, q)
    np.testing.assert_allclose(s, s.T, atol=1e-6)
    assert (s <= 1.0).all() and (s >= -1.0).all()
    np.testing.assert_allclose(np.diag(s), 1.0)
