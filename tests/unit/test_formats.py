"""Vector file import/export: round trips, gensim interoperability, and every malformed input."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from embedops.errors import FormatError, InvalidInput
from embedops.models.formats import FORMATS, export_vectors, import_vectors
from embedops.models.static import StaticVectors


@pytest.fixture(scope="module")
def real_table() -> StaticVectors:
    """The fastText .vec file gensim ships (Lee corpus, cased words, punctuation)."""
    from gensim.test.utils import datapath

    return import_vectors(datapath("lee_fasttext.vec"), "fasttext-vec", quiet=True)


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_import_round_trip_is_exact(
    tmp_path: Path, real_table: StaticVectors, fmt: str
) -> None:
    path = export_vectors(real_table, tmp_path / f"v.{fmt}", fmt, quiet=True)
    back = import_vectors(path, fmt, quiet=True)
    assert back.index_to_key == real_table.index_to_key
    np.testing.assert_array_equal(_bits(back.vectors), _bits(real_table.vectors))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind


@pytest.mark.parametrize("fmt", ["word2vec-text", "word2vec-binary", "fasttext-vec"])
def test_gensim_reads_our_files_and_we_read_gensims(
    tmp_path: Path, real_table: StaticVectors, fmt: str
) -> None:
    from gensim.models import KeyedVectors

    binary = fmt == "word2vec-binary"
    kv = KeyedVectors.load_word2vec_format(
        export_vectors(real_table, tmp_path / "ours", fmt, quiet=True), binary=binary
    )
    np.testing.assert_array_equal(kv.vectors, real_table.vectors)
    kv.save_word2vec_format(str(tmp_path / "theirs"), binary=binary)
    theirs = import_vectors(tmp_path / "theirs", fmt, quiet=True)
    assert theirs.index_to_key == kv.index_to_key
    np.testing.assert_array_equal(theirs.vectors, kv.vectors)


def test_limit_and_compressed_input(tmp_path: Path, real_table: StaticVectors) -> None:
    plain = export_vectors(real_table, tmp_path / "v.txt", "word2vec-text", quiet=True)
    packed = tmp_path / "v.txt.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    back = import_vectors(packed, "word2vec-text", quiet=True)
    np.testing.assert_array_equal(back.vectors, real_table.vectors)
    for fmt in ("word2vec-binary", "glove", "fasttext-vec"):
        path = export_vectors(real_table, tmp_path / f"v.{fmt}", fmt, quiet=True)
        head = import_vectors(path, fmt, limit=7, quiet=True)
        assert head.index_to_key == real_table.index_to_key[:7]
    with pytest.raises(InvalidInput, match="limit"):
        import_vectors(plain, "word2vec-text", limit=0)


def _write(tmp_path: Path, data: bytes | str, name: str = "bad.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def test_unknown_format_lists_known_ones(tmp_path: Path, real_table: StaticVectors) -> None:
    path = _write(tmp_path, "1 2\na 1 2\n")
    with pytest.raises(FormatError, match="unknown vector format 'word2vec'.*glove"):
        import_vectors(path, "word2vec")
    with pytest.raises(FormatError, match="unknown vector format"):
        export_vectors(real_table, tmp_path / "out", "csv")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("content", "fmt", "message"),
    [
        ("3 2\na 1 2\nb 1 2 3\nc 1 2\n", "word2vec-text", "line 3 .* dimension 3, expected 2"),
        ("a 1 2\nb 1\n", "glove", "line 2 .* dimension 1, expected 2"),
        ("3 2\na 1 2\nb 1 2\n", "word2vec-text", "says 3 vectors, the file has 2"),
        ("1 2\na 1 2\nb 1 2\n", "fasttext-vec", "says 1 vectors, line 3 holds one more"),
        ("2 2\n\na 1 2\n\nb 1 2\nc 1\n", "word2vec-text", "says 2 vectors, line 6 holds one more"),
        ("2 2\na 1 2\nb 1 oops\n", "word2vec-text", "line 3 .* 'oops' is not a number"),
        ("2 2\na 1 2\nb 1 nan\n", "word2vec-text", "line 3 .* NaN or infinite"),
        ("2 2\na 1 2\na 3 4\n", "word2vec-text", "'a' appears twice"),
        ("a b c\n1 2 3\n", "word2vec-text", "line 1 .* header 'COUNT DIM'"),
        ("", "word2vec-text", "is empty"),
        ("", "glove", "has no vectors"),
        ("\n\n", "word2vec-binary", "is empty"),
        ("2 2\n\n", "word2vec-text", "says 2 vectors, the file has 0"),
    ],
)
def test_malformed_text_files(tmp_path: Path, content: str, fmt: str, message: str) -> None:
    with pytest.raises(FormatError, match=message) as info:
        import_vectors(_write(tmp_path, content), fmt, quiet=True)
    assert info.value.http_status == 422 and info.value.hint


def test_non_utf8_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, b"2 2\nok 1 2\ncaf\xe9 1 2\n")
    with pytest.raises(FormatError, match="line 3 .* not valid UTF-8"):
        import_vectors(path, "word2vec-text", quiet=True)


def test_truncated_binary_says_how_many_were_read(
    tmp_path: Path, real_table: StaticVectors
) -> None:
    path = export_vectors(real_table, tmp_path / "v.bin", "word2vec-binary", quiet=True)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match=rf"truncated: read \d+ of {len(real_table)} vectors"):
        import_vectors(path, "word2vec-binary", quiet=True)
    path.write_bytes(data + b"extra bytes")
    with pytest.raises(FormatError, match="data after"):
        import_vectors(path, "word2vec-binary", quiet=True)


def test_binary_with_text_body_is_refused(tmp_path: Path, real_table: StaticVectors) -> None:
    text = export_vectors(real_table, tmp_path / "v.txt", "word2vec-text", quiet=True)
    with pytest.raises(FormatError):
        import_vectors(text, "word2vec-binary", quiet=True)


def test_missing_file_and_unstorable_words(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such vector file"):
        import_vectors(tmp_path / "nope.vec", "fasttext-vec")
    table = StaticVectors(["new york", "b"], np.ones((2, 3), dtype=np.float32))
    with pytest.raises(FormatError, match="'new york'.*whitespace"):
        export_vectors(table, tmp_path / "out.txt", "word2vec-text")
    assert list(tmp_path.iterdir()) == []


def test_failed_export_keeps_the_old_file(
    tmp_path: Path, real_table: StaticVectors, monkeypatch: pytest.MonkeyPatch
) -> None:
    from embedops.models import formats

    target = export_vectors(real_table, tmp_path / "v.txt", "word2vec-text", quiet=True)
    before = target.read_bytes()
    calls = []
    real_write = formats._write_text_rows

    def write_then_fail(fh, words, rows):  # type: ignore[no-untyped-def]
        calls.append(len(words))
        if len(calls) == 2:
            raise OSError("disk full")
        real_write(fh, words, rows)

    monkeypatch.setattr(formats, "_CHUNK_LINES", 100)
    monkeypatch.setattr(formats, "_write_text_rows", write_then_fail)
    with pytest.raises(OSError, match="disk full"):
        export_vectors(real_table, target, "word2vec-text", quiet=True)
    assert calls == [100, 100]
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["v.txt"]


def test_publish_import_detects_casing(registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from gensim.test.utils import datapath

    from embedops.models.formats import publish_import

    cased = publish_import(registry, datapath("lee_fasttext.vec"), "fasttext-vec", "lee")
    assert cased.kind == "static" and cased.manifest["tokenizer"]["lowercase"] is False
    lower = StaticVectors(["the", "police"], np.ones((2, 3), dtype=np.float32))
    path = export_vectors(lower, tmp_path / "v.bin", "word2vec-binary", quiet=True)
    mv = publish_import(registry, path, "word2vec-binary", "low")
    assert mv.kind == "word2vec" and mv.manifest["tokenizer"]["lowercase"] is True
    assert mv.manifest["params"]["format"] == "word2vec-binary"
    forced = publish_import(registry, path, "word2vec-binary", "low", lowercase=False)
    assert forced.ref == "low@2" and forced.manifest["tokenizer"]["lowercase"] is False
    with pytest.raises(InvalidInput, match="invalid model name"):
        publish_import(registry, path, "word2vec-binary", "bad name")
