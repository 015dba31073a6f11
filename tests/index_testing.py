"""Helpers shared by the index tests (contract, property, unit)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module", autouse=True)
def one_faiss_thread() -> Iterator[None]:
    """FAISS's OpenMP threads spin badly on a busy 2-core machine; one thread is faster.

    Import this fixture into a test module to apply it there.
    """
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)
