"""Pure parts of the use cases: MMR selection and versioned artefacts (checksummed, no pickle)."""

from __future__ import annotations

import numpy as np
import pytest

from embedops.config import Workspace
from embedops.errors import IntegrityError, InvalidInput, NotFound
from embedops.usecases import artefacts
from embedops.usecases.mmr import mmr


def test_mmr_keeps_relevance_order_at_zero_and_skips_near_copies() -> None:
    vecs = np.array([[1, 0], [0.99, 0.141], [0, 1]], dtype=np.float32)
    rel = np.array([0.9, 0.89, 0.5])
    assert mmr(rel, vecs, 3, 0.0) == [0, 1, 2]
    assert mmr(rel, vecs, 2, 0.6) == [0, 2]
    with pytest.raises(InvalidInput, match="diversity"):
        mmr(rel, vecs, 2, 1.5)


def test_artefacts_version_lineage_and_checksum(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ws = Workspace(tmp_path / "ws").ensure()
    v1, m1 = artefacts.publish(ws, "maps", "m", {"x": np.ones(3, np.float32)}, {"a": 1})
    v2, m2 = artefacts.publish(ws, "maps", "m", {"x": np.zeros(3, np.float32)}, {"a": 2})
    assert (v1, v2) == (1, 2) and m2["parent"] == "m@1" and m1["parent"] is None
    manifest, arrays = artefacts.load(ws, "maps", "m", 1)
    assert manifest["a"] == 1 and arrays["x"].tolist() == [1, 1, 1]
    assert not list((ws.usecases_dir / "maps" / "m" / "1").glob("*.pkl"))
    (ws.usecases_dir / "maps" / "m" / "2" / artefacts.ARRAYS).write_bytes(b"tampered")
    with pytest.raises(IntegrityError):
        artefacts.load(ws, "maps", "m")
    with pytest.raises(NotFound, match="published: m@1, m@2"):
        artefacts.load(ws, "maps", "m", 7)
    with pytest.raises(InvalidInput):
        artefacts.check_name("../escape")


def _words(texts: list[str]) -> list[int]:
    return [len(t.split()) for t in texts]


def test_chunks_keep_sentences_whole_with_overlap() -> None:
    from embedops.usecases.rag import check_chunking, chunk_spans, sentences

    text = " ".join(f"Sentence {n} has {'some ' * (n % 5)}words." for n in range(40))
    spans = chunk_spans(text, _words, chunk_tokens=20, overlap=6)
    bounds = sentences(text)
    starts, ends = {a for a, _ in bounds}, {b for _, b in bounds}
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    for (a, b, n), nxt in zip(spans, spans[1:] + [None], strict=True):
        assert a in starts and b in ends and n == _words([text[a:b]])[0] <= 20
        if nxt is not None:
            assert a < nxt[0] <= b + 1  # moves on, and shares at most the overlap
            assert _words([text[nxt[0]:b]])[0] <= 6
    none = chunk_spans(text, _words, chunk_tokens=20, overlap=0)
    assert all(x[1] < y[0] for x, y in zip(none, none[1:], strict=False))
    with pytest.raises(InvalidInput, match="overlap"):
        check_chunking(20, 11)
    with pytest.raises(InvalidInput, match="chunk_tokens"):
        check_chunking(4, 0)


def test_a_sentence_longer_than_a_chunk_is_cut_between_words() -> None:
    from embedops.usecases.rag import chunk_spans

    text = "Short one. " + " ".join(f"w{n}" for n in range(50)) + ". Last one!"
    spans = chunk_spans(text, _words, chunk_tokens=12, overlap=0)
    assert all(n <= 12 for _, _, n in spans)
    assert all(text[a] != " " and text[b - 1] != " " for a, b, _ in spans)
    assert " ".join(text[a:b] for a, b, _ in spans).split() == text.split()
