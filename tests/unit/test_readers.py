"""File readers: JSONL, CSV/TSV, Parquet and text, with line numbers for every bad line."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from embedops.errors import FormatError, InvalidInput
from embedops.store.readers import (
    BadLine,
    ReadOptions,
    Record,
    count_records,
    detect_format,
    read_records,
)


def _read(path: Path, fmt: str | None = None, **opts: str) -> list[Record | BadLine]:
    return list(read_records(path, fmt, ReadOptions(**opts)))


def test_jsonl_records_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    lines = [
        json.dumps({"id": "a", "text": "first doc", "lang": "en", "year": 2020}).encode(),
        b"{not json",
        b"",
        json.dumps({"text": "no id"}).encode(),
        b"[1, 2]",
        json.dumps({"id": 7, "text": "integer id"}).encode(),
        b'{"id": "u", "text": "caf\xe9"}',
        json.dumps({"id": "e", "text": ""}).encode(),
        json.dumps({"id": "z", "text": "gone", "deleted": True}).encode(),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    got = _read(path, delete_field="deleted")
    assert got[0] == Record(1, "a", "first doc", {"lang": "en", "year": 2020})
    bad = {r.line: r.message for r in got if isinstance(r, BadLine)}
    assert "invalid JSON" in bad[2]
    assert "no 'id' field (fields: text)" in bad[4]
    assert "expected a JSON object" in bad[5]
    offset = sum(len(x) + 1 for x in lines[:6]) + lines[6].index(b"\xe9")
    assert bad[7] == f"not valid UTF-8 at byte offset {offset} (re-encode the file as UTF-8)"
    assert "no text in field 'text'" in bad[8]
    ok = [r for r in got if isinstance(r, Record)]
    assert [(r.line, r.id, r.delete) for r in ok] == [(1, "a", False), (6, "7", False),
                                                      (9, "z", True)]


def test_jsonl_custom_fields(tmp_path: Path) -> None:
    path = tmp_path / "d.ndjson.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(json.dumps({"word": "cat", "gloss": "a small feline", "pos": "n"}) + "\n")
    got = _read(path, id_field="word", text_field="gloss")
    assert got == [Record(1, "cat", "a small feline", {"pos": "n"})]
    assert count_records(path, "jsonl") is None


def test_csv_multiline_quotes_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('id,text,tag\n1,"two\nline text",x\n2,short\n3,plain,y\n', encoding="utf-8")
    got = _read(path)
    assert got[0] == Record(2, "1", "two\nline text", {"tag": "x"})
    assert got[1] == BadLine(4, "2 fields where the header has 3")
    assert got[2] == Record(5, "3", "plain", {"tag": "y"})
    assert count_records(path, "csv") == 5


def test_csv_missing_column_and_bad_encoding(tmp_path: Path) -> None:
    path = tmp_path / "d.tsv"
    path.write_text("key\tbody\nk\tv\n")
    with pytest.raises(FormatError, match=r"no column 'id', 'text' \(columns: key, body\)"):
        _read(path)
    assert _read(path, id_field="key", text_field="body") == [Record(2, "k", "v", {})]
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"id,text\n1,ok\n2,na\xefve\n")
    with pytest.raises(FormatError, match="line 3: not valid UTF-8 at byte offset 17"):
        _read(latin)


def test_parquet(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    table = pa.table({"doc": ["a", "b", None], "body": ["alpha text", None, "gamma"],
                      "score": [1.5, 2.0, 3.0]})
    pq.write_table(table, path)
    got = _read(path, id_field="doc", text_field="body")
    assert got[0] == Record(1, "a", "alpha text", {"score": 1.5})
    assert isinstance(got[1], BadLine) and got[1].line == 2 and "no text" in got[1].message
    assert isinstance(got[2], BadLine) and "no 'doc' field" in got[2].message
    assert count_records(path, "parquet") == 3
    with pytest.raises(FormatError, match="no column 'id'"):
        _read(path)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"definitely not parquet")
    with pytest.raises(FormatError, match="not a readable Parquet"):
        _read(broken)


def test_text_ids_by_line_or_hash(tmp_path: Path) -> None:
    path = tmp_path / "lines.txt"
    path.write_text("first line\n\nthird line\nfirst line\n")
    assert [(r.line, r.id) for r in _read(path)] == [(1, "1"), (3, "3"), (4, "4")]
    hashed = _read(path, text_ids="hash")
    assert hashed[0].id == hashed[2].id != hashed[1].id and len(hashed[0].id) == 16


def test_format_detection_and_bad_options(tmp_path: Path) -> None:
    assert detect_format(Path("x.jsonl.xz")) == "jsonl"
    assert detect_format(Path("x.data"), "csv") == "csv"
    with pytest.raises(InvalidInput, match="--format"):
        detect_format(Path("x.data"))
    with pytest.raises(InvalidInput, match="unknown format"):
        detect_format(Path("x.csv"), "xml")
    with pytest.raises(InvalidInput, match="two different"):
        ReadOptions(id_field="a", text_field="a")
    with pytest.raises(InvalidInput, match="no such file"):
        _read(tmp_path / "absent.jsonl")
