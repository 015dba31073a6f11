"""Compressed kinds keep no id array of their own in memory when the ids are their rows
(issue 19: memory per vector). A segment's ids are ``0..n-1``: a loaded rabitq or ivfpq index
memory-maps them, a search returns the rescored rows as ids without reading them and builds
no id -> row table, and ``memory_bytes`` counts neither. Other ids, and an index written
after loading, still map through the table, with the same results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedops.index import load_index, make_index
from embedops.index.files import resident_nbytes
from embedops.index.rescore import is_identity

N, DIM = 4000, 32


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    centers = rng.standard_normal((20, DIM)).astype(np.float32)
    x = centers[rng.integers(0, 20, N)] + 0.3 * rng.standard_normal((N, DIM)).astype(np.float32)
    return x.astype(np.float32), x[:50] + 0.01


def _exact(x: np.ndarray, q: np.ndarray, ids: np.ndarray) -> np.ndarray:
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    return ids[np.argsort(-(q @ xn.T), axis=1)[:, :10]]


@pytest.mark.parametrize("kind", ["rabitq", "ivfpq"])
def test_row_ids_are_mapped_and_never_read(kind: str, data: tuple[np.ndarray, np.ndarray],
                                           tmp_path: Path) -> None:
    x, q = data
    ids = np.arange(N, dtype=np.int64)
    index = make_index(kind, DIM, "cosine", {"nlist": 16, "nprobe": 16, "rescore_factor": 20})
    index.build(x, ids)
    before = index.search(q, 10)
    index.save(tmp_path)
    loaded = load_index(tmp_path)
    assert resident_nbytes(loaded._ids) == 0  # a view of the file's pages
    assert resident_nbytes(index._ids) == index._ids.nbytes
    got = loaded.search(q, 10)
    np.testing.assert_array_equal(got[0], before[0])
    np.testing.assert_allclose(got[1], before[1], rtol=1e-6)
    assert loaded._order is None  # no id -> row table was needed
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in
                    zip(got[0], _exact(x, q, ids), strict=True)]) >= 0.9
    # the ids cost nothing of the process's own memory: less than the in-memory original
    # by exactly the id array (the FAISS part is the same codes)
    assert index.memory_bytes() - loaded.memory_bytes() == N * 8
    assert len(loaded.search(q[:1], 10)[0][0]) == 10  # the one-query path alike


@pytest.mark.parametrize("kind", ["rabitq", "ivfpq"])
def test_other_ids_map_through_the_table(kind: str, data: tuple[np.ndarray, np.ndarray],
                                         tmp_path: Path) -> None:
    x, q = data
    ids = np.random.default_rng(1).permutation(N).astype(np.int64) * 3 + 5  # sparse, shuffled
    index = make_index(kind, DIM, "cosine", {"nlist": 16, "nprobe": 16, "rescore_factor": 20})
    index.build(x, ids)
    index.save(tmp_path)
    loaded = load_index(tmp_path)
    got, _ = loaded.search(q, 10)
    np.testing.assert_array_equal(got, index.search(q, 10)[0])
    assert set(got[:, 0].tolist()) <= set(ids.tolist())
    assert loaded._order is not None  # the lookup was built
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in
                    zip(got, _exact(x, q, ids), strict=True)]) >= 0.9


def test_a_write_after_loading_leaves_the_mapping(data: tuple[np.ndarray, np.ndarray],
                                                  tmp_path: Path) -> None:
    x, q = data
    params = {"nlist": 16, "nprobe": 16, "rescore_factor": 20}
    index = make_index("rabitq", DIM, "cosine", params)
    index.build(x[:3000], np.arange(3000, dtype=np.int64))
    index.save(tmp_path)
    loaded = load_index(tmp_path)
    loaded.search(q, 10)  # the identity seen once ...
    new = np.arange(10_000, 11_000, dtype=np.int64)
    for each in (loaded, index):  # ... then not: the loaded one and its in-memory twin alike
        each.add(x[3000:], new)
    assert resident_nbytes(loaded._ids) == loaded._ids.nbytes  # a new array in memory
    got, _ = loaded.search(x[2990:3010], 10)
    np.testing.assert_array_equal(got, index.search(x[2990:3010], 10)[0])
    assert got[:, 0].tolist() == [*range(2990, 3000), *range(10_000, 10_010)]  # themselves
    for each in (loaded, index):
        assert each.remove(np.array([0, 1, 10_000])) == 3
    got, _ = loaded.search(x[:2], 10)
    np.testing.assert_array_equal(got, index.search(x[:2], 10)[0])
    assert 0 not in got[0] and 1 not in got[1]
    # the file the index was loaded from is unchanged by the writes
    np.testing.assert_array_equal(np.load(tmp_path / "ids.npy"), np.arange(3000))


def test_identity_and_resident_bytes(tmp_path: Path) -> None:
    assert is_identity(np.arange(0, dtype=np.int64))
    assert is_identity(np.arange(5, dtype=np.int64))
    assert not is_identity(np.array([0, 2, 1, 3, 4], dtype=np.int64))  # ends right, inside not
    assert not is_identity(np.arange(1, 6, dtype=np.int64))
    big = np.arange((1 << 20) + 7, dtype=np.int64)
    assert is_identity(big)
    big[(1 << 20) + 3] = 0
    assert not is_identity(big)  # a difference in the second slice
    np.save(tmp_path / "a.npy", np.arange(10, dtype=np.int64))
    mapped = np.asarray(np.load(tmp_path / "a.npy", mmap_mode="r"))
    assert resident_nbytes(mapped) == 0 and resident_nbytes(mapped[2:5]) == 0
    assert resident_nbytes(mapped.copy()) == 80


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_a_store_in_parts_rescores_as_one(dtype: str, metric: str, tmp_path: Path) -> None:
    from embedops.errors import IntegrityError
    from embedops.index.rescore import MAX_PARTS, VectorStore

    rng = np.random.default_rng(3)
    x = rng.standard_normal((900, 16)).astype(np.float32)
    q = rng.standard_normal((7, 16)).astype(np.float32)
    rows = np.sort(rng.choice(900, size=(7, 60)), axis=1)[:, ::-1].copy()
    rows[2, 40:] = -1  # a short row: missing candidates last
    whole = VectorStore(16, dtype)
    whole.append(x)
    first = VectorStore(16, dtype)
    first.append(x[:500])
    first.save(tmp_path)
    split = VectorStore(16, dtype)
    split.load(tmp_path, 500)  # a mapped part ...
    split.append(x[500:700])  # ... then parts of its own in memory
    split.append(x[700:])
    assert len(split.parts) == 2 and split.rows == 900  # in-memory rows join the last part
    want = whole.rescore(q, rows, None, 10, metric)
    got = split.rescore(q, rows, None, 10, metric)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-5)
    short = rows[2:3].copy()
    short[0, 3:] = -1  # fewer candidates than k: padded with -1 / -inf
    for query, row in [*((q[i:i + 1], rows[i:i + 1]) for i in range(len(q))), (q[2:3], short)]:
        one, mine = whole.rescore(query, row, None, 10, metric), split.rescore(query, row, None,
                                                                              10, metric)
        np.testing.assert_array_equal(mine[0], one[0])  # one query a call: its own path
        np.testing.assert_allclose(mine[1], one[1], rtol=1e-5, atol=1e-5)
    assert (mine[0][0, 3:] == -1).all() and np.isneginf(mine[1][0, 3:]).all()
    out = tmp_path / "saved"
    out.mkdir()
    split.save(out)  # the mapped part linked, the other written
    assert (out / "vectors.npy").stat().st_ino == (tmp_path / "vectors.npy").stat().st_ino
    again = VectorStore(16, dtype)
    again.load(out, 900)
    np.testing.assert_array_equal(again.rescore(q, rows, None, 10, metric)[0], want[0])
    with pytest.raises(IntegrityError, match="expected 901"):
        VectorStore(16, dtype).load(out, 901)
    many = VectorStore(16, dtype)
    many.load(out, 900)
    for n in range(MAX_PARTS + 2):  # each append after a mapped part starts a part ...
        many.parts.append(np.load(out / "vectors.1.npy", mmap_mode="r")[:1])
        many.append(x[n:n + 1])
    assert len(many.parts) <= MAX_PARTS  # ... and the later ones are joined past the cap
