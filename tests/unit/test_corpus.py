"""Corpus streaming: formats, compression, folders, stats, and every bad input."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
from pathlib import Path

import pytest

from embedops.errors import CorpusError, InvalidInput
from embedops.text.corpus import Corpus, tokenize_batch, write_tokenized
from embedops.text.redact import ALL_KINDS
from embedops.text.tokenize import TokenizerSpec

TEXT = "The quick brown fox.\n\nJumps over the lazy dog, 3 times!\n  \nCall 555-123-4567.\n"


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_plain_text_streams_non_blank_lines_with_stats(tmp_path: Path) -> None:
    corpus = Corpus(_write(tmp_path / "c.txt", TEXT.encode()))
    texts = list(corpus.texts())
    assert [t.strip() for t in texts] == [
        "The quick brown fox.", "Jumps over the lazy dog, 3 times!", "Call 555-123-4567."
    ]
    assert corpus.stats.items == 3 and corpus.stats.bytes == len(TEXT.encode())
    assert len(corpus.stats.sha256) == 64


@pytest.mark.parametrize(
    ("suffix", "compress"),
    [(".txt.gz", gzip.compress), (".txt.xz", lzma.compress), (".txt.bz2", bz2.compress)],
)
def test_compressed_files_read_like_plain_ones(tmp_path: Path, suffix: str, compress) -> None:
    plain = Corpus(_write(tmp_path / "c.txt", TEXT.encode()))
    packed = Corpus(_write(tmp_path / f"d{suffix}", compress(TEXT.encode())))
    assert list(packed.texts()) == list(plain.texts())
    assert packed.stats.sha256 == plain.stats.sha256  # the hash names the content


def test_jsonl_reads_the_configured_field(tmp_path: Path) -> None:
    lines = [json.dumps({"gloss": "a red fruit", "id": 1}), "", json.dumps({"gloss": "a dog"})]
    corpus = Corpus(_write(tmp_path / "g.jsonl", "\n".join(lines).encode()), text_field="gloss")
    assert list(corpus.texts()) == ["a red fruit", "a dog"]


def test_jsonl_line_that_is_not_json_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "g.jsonl", b'{"text": "ok"}\n{"text": broken\n')
    with pytest.raises(CorpusError, match=r"line 2 is not JSON"):
        list(Corpus(path).texts())


def test_jsonl_line_without_the_field_names_line_and_field(tmp_path: Path) -> None:
    path = _write(tmp_path / "g.jsonl", b'{"text": "ok"}\n{"body": "no"}\n')
    with pytest.raises(CorpusError, match=r"line 2 has no string field 'text'") as info:
        list(Corpus(path).texts())
    assert "--text-field" in str(info.value)


def test_missing_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="does not exist") as info:
        Corpus(tmp_path / "nope.txt")
    assert info.value.http_status == 422


def test_unknown_extension_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="unsupported extension"):
        Corpus(_write(tmp_path / "c.docx", b"hello"))


def test_empty_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="holds no files"):
        Corpus(tmp_path / "empty")


def test_bad_options_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.txt", b"x")
    with pytest.raises(InvalidInput, match="errors mode"):
        Corpus(path, errors="ignore")
    with pytest.raises(InvalidInput, match="text_field"):
        Corpus(path, text_field="")


def test_non_utf8_names_file_and_byte_offset(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.txt", b"good line\nbad \xff byte\n")
    with pytest.raises(CorpusError, match=r"bad\.txt.*byte offset 14 \(line 2\)") as info:
        list(Corpus(path).texts())
    assert "--replace-bad-bytes" in str(info.value)


def test_replace_mode_replaces_and_counts_bad_bytes(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.txt", b"ok \xef\xbf\xbd kept\nbad \xff\xfe byte\n")
    corpus = Corpus(path, errors="replace")
    texts = list(corpus.texts())
    assert texts[1] == "bad \ufffd\ufffd byte\n"
    assert corpus.stats.replaced_bytes == 2  # the U+FFFD already in line 1 is not counted


def test_truncated_compressed_file_is_a_corpus_error(tmp_path: Path) -> None:
    data = gzip.compress(TEXT.encode() * 50)
    path = _write(tmp_path / "t.txt.gz", data[: len(data) // 2])
    with pytest.raises(CorpusError, match="cannot read"):
        list(Corpus(path).texts())


def test_folder_is_read_recursively_in_order_skipping_hidden(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    _write(root / "b.txt", b"second\n")
    _write(root / "a" / "x.txt.gz", gzip.compress(b"first\n"))
    _write(root / ".hidden" / "z.txt", b"hidden\n")
    _write(root / ".notes.txt", b"hidden too\n")
    corpus = Corpus(root)
    assert [t.strip() for t in corpus.texts()] == ["first", "second"]
    assert corpus.stats.files == 2


def test_folder_with_an_unknown_file_names_it(tmp_path: Path) -> None:
    _write(tmp_path / "d" / "a.txt", b"x\n")
    _write(tmp_path / "d" / "img.png", b"\x89PNG")
    with pytest.raises(CorpusError, match=r"img\.png"):
        Corpus(tmp_path / "d")


def test_corpus_without_tokens_is_refused(tmp_path: Path) -> None:
    corpus = Corpus(_write(tmp_path / "n.txt", b"123 456\n!!! ...\n"))
    with pytest.raises(CorpusError, match="no tokens"):
        write_tokenized(corpus, TokenizerSpec(), tmp_path / "out.txt")


def test_write_tokenized_matches_the_tokenizer_and_counts_tokens(
    tmp_path: Path, lee_corpus: Path
) -> None:
    spec = TokenizerSpec(redact=ALL_KINDS)
    corpus = Corpus(lee_corpus)
    stats = write_tokenized(corpus, spec, tmp_path / "one.txt", workers=1)
    expected = [spec.tokenize(t) for t in Corpus(lee_corpus).texts()]
    lines = (tmp_path / "one.txt").read_text().splitlines()
    assert lines == [" ".join(toks) for toks in expected if toks]
    assert stats.tokens == sum(map(len, expected)) and stats.items == 300
    write_tokenized(Corpus(lee_corpus), spec, tmp_path / "two.txt", workers=2)
    assert (tmp_path / "two.txt").read_text() == (tmp_path / "one.txt").read_text()


@pytest.mark.parametrize(
    "spec",
    [
        TokenizerSpec(),
        TokenizerSpec(lowercase=False, normalization="none", min_token_len=2, max_token_len=6),
        TokenizerSpec(token_pattern=r"\S+", redact=("email",)),
    ],
)
def test_tokenize_batch_equals_tokenize_line_by_line(spec: TokenizerSpec) -> None:
    texts = ["Ｆｕｌｌ width ﬁ ligature", "Straße\u200b ZWSP\ttab", "", "x@y.org mail",
             "ÉCOLE  Über\x07bell", "line\nbreak inside", "\u2028sep"]
    assert tokenize_batch(texts, spec) == [spec.tokenize(t) for t in texts]


def test_shipped_wordnet_glosses_stream_with_their_licence() -> None:
    from itertools import islice

    from embedops.data import wordnet_glosses_path, wordnet_license_path

    first = list(islice(Corpus(wordnet_glosses_path(), text_field="gloss").texts(), 3))
    assert first[1] == "an entity that has physical existence"
    assert "Princeton" in wordnet_license_path().read_text()
