"""Property: any table of finite float32 vectors and whitespace-free words survives export and
import in every format bit-exactly (extreme magnitudes, subnormals and -0.0 included)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from embedops.models.formats import FORMATS, export_vectors, import_vectors
from embedops.models.static import StaticVectors

_WORD = st.text(
    alphabet=st.characters(blacklist_categories=("Z", "C"), blacklist_characters="\x85"),
    min_size=1,
    max_size=12,
)


@st.composite
def tables(draw: st.DrawFn) -> StaticVectors:
    words = draw(st.lists(_WORD, min_size=1, max_size=12, unique=True))
    dim = draw(st.integers(min_value=1, max_value=7))
    floats = st.floats(width=32, allow_nan=False, allow_infinity=False)
    vectors = draw(arrays(np.float32, (len(words), dim), elements=floats))
    return StaticVectors(words, vectors)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=tables(), fmt=st.sampled_from(FORMATS))
def test_round_trip_is_bit_exact(table: StaticVectors, fmt: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = export_vectors(table, Path(tmp) / "vectors", fmt, quiet=True)
        back = import_vectors(path, fmt, quiet=True)
    assert back.index_to_key == table.index_to_key
    np.testing.assert_array_equal(back.vectors.view(np.uint32), table.vectors.view(np.uint32))
