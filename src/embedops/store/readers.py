"""Readers that turn JSONL, CSV/TSV, Parquet and plain-text files into records for ingest.

Each reader yields ``Record`` (an item to upsert, or an id to delete) or ``BadLine`` (a line it
skipped, with its number and why), so one malformed line does not stop a large ingest. A file
that cannot be read at all (missing columns, unknown format, CSV that is not UTF-8) raises
FormatError. ``.gz`` and ``.xz`` files are decompressed on the fly.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import lzma
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from embedops.errors import FormatError, InvalidInput

FORMATS = ("jsonl", "csv", "tsv", "parquet", "text")
TEXT_IDS = ("line", "hash")
_SUFFIXES = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv",
    ".parquet": "parquet", ".pq": "parquet", ".txt": "text", ".text": "text",
}


@dataclass(frozen=True)
class ReadOptions:
    """Which fields hold the id and the text; ``delete_field`` marks records that delete their
    id when truthy; ``text_ids`` names plain-text items by line number or by content hash."""

    id_field: str = "id"
    text_field: str = "text"
    delete_field: str | None = None
    text_ids: str = "line"

    def __post_init__(self) -> None:
        if self.text_ids not in TEXT_IDS:
            raise InvalidInput(f"unknown text id scheme {self.text_ids!r}", "use 'line' or 'hash'")
        if not self.id_field or not self.text_field or self.id_field == self.text_field:
            raise InvalidInput(
                f"id field {self.id_field!r} and text field {self.text_field!r} must be "
                "two different, non-empty names"
            )


@dataclass(frozen=True)
class Record:
    """One item read from ``line`` (1-based; rows for Parquet); ``delete`` records carry no
    text."""

    line: int
    id: str
    text: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    delete: bool = False


@dataclass(frozen=True)
class BadLine:
    """A line that was skipped and why."""

    line: int
    message: str


def detect_format(path: Path, fmt: str | None = None) -> str:
    """``fmt`` if given (validated), else the format its suffix names."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise InvalidInput(f"unknown format {fmt!r}", f"use one of {', '.join(FORMATS)}")
        return fmt
    suffixes = [s for s in path.suffixes if s not in (".gz", ".xz")]
    found = _SUFFIXES.get(suffixes[-1].lower()) if suffixes else None
    if found is None:
        raise InvalidInput(
            f"cannot tell the format of {path.name} from its name",
            f"pass --format ({', '.join(FORMATS)})",
        )
    return found


def _open_binary(path: Path) -> IO[bytes]:
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}", "check the path")
    if path.suffix == ".gz":
        return cast(IO[bytes], gzip.open(path, "rb"))
    if path.suffix == ".xz":
        return lzma.open(path, "rb")
    return open(path, "rb")


def count_records(path: Path, fmt: str) -> int | None:
    """Number of lines (rows for Parquet) for a progress bar; None when costly to know."""
    if fmt == "parquet":
        return int(_parquet_file(path).metadata.num_rows)
    if path.suffix in (".gz", ".xz"):
        return None
    with open(path, "rb") as fh:
        return sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 20), b""))


def read_records(
    path: str | Path, fmt: str | None = None, options: ReadOptions | None = None
) -> Iterator[Record | BadLine]:
    """Records of ``path`` in file order (see the module docstring)."""
    path = Path(path)
    opts = options or ReadOptions()
    kind = detect_format(path, fmt)
    if kind == "jsonl":
        yield from _jsonl(path, opts)
    elif kind in ("csv", "tsv"):
        yield from _csv(path, opts, "\t" if kind == "tsv" else ",")
    elif kind == "parquet":
        yield from _parquet(path, opts)
    else:
        yield from _text(path, opts)


def _lines(path: Path) -> Iterator[tuple[int, int, bytes]]:
    """``(line number, byte offset, raw line without newline)``."""
    offset = 0
    with _open_binary(path) as fh:
        for number, raw in enumerate(fh, start=1):
            yield number, offset, raw.rstrip(b"\r\n")
            offset += len(raw)


def _decode(raw: bytes, offset: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _NotUtf8(offset + exc.start) from exc


class _NotUtf8(Exception):
    def __init__(self, offset: int) -> None:
        super().__init__(offset)
        self.offset = offset


def _utf8_message(offset: int) -> str:
    return f"not valid UTF-8 at byte offset {offset} (re-encode the file as UTF-8)"


def _from_mapping(line: int, row: dict[str, Any], opts: ReadOptions) -> Record | BadLine:
    """A record from one JSON object / CSV row / Parquet row."""
    if opts.id_field not in row or row[opts.id_field] in (None, ""):
        fields = ", ".join(sorted(map(str, row))) or "none"
        return BadLine(line, f"no {opts.id_field!r} field (fields: {fields}); see --id-field")
    raw_id = row[opts.id_field]
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
        return BadLine(line, f"{opts.id_field!r} must be a string or integer, got {raw_id!r:.40}")
    item_id = str(raw_id)
    if opts.delete_field and _truthy(row.get(opts.delete_field)):
        return Record(line, item_id, delete=True)
    text = row.get(opts.text_field)
    if not isinstance(text, str) or not text.strip():
        fields = ", ".join(sorted(map(str, row)))
        return BadLine(
            line, f"no text in field {opts.text_field!r} (fields: {fields}); see --text-field"
        )
    skip = {opts.id_field, opts.text_field, opts.delete_field}
    metadata = {str(k): v for k, v in row.items() if k not in skip}
    return Record(line, item_id, text, metadata)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "y", "t")
    return bool(value)


def _per_line(
    path: Path, parse: Callable[[int, str], Record | BadLine]
) -> Iterator[Record | BadLine]:
    """``parse(number, text)`` of every non-blank line; BadLine for one that is not UTF-8."""
    for number, offset, raw in _lines(path):
        try:
            text = _decode(raw, offset)
        except _NotUtf8 as exc:
            yield BadLine(number, _utf8_message(exc.offset))
            continue
        if text.strip():
            yield parse(number, text)


def _jsonl(path: Path, opts: ReadOptions) -> Iterator[Record | BadLine]:
    def parse(number: int, text: str) -> Record | BadLine:
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            return BadLine(number, f"invalid JSON: {exc.msg} at column {exc.colno}")
        if not isinstance(obj, dict):
            return BadLine(number, f"expected a JSON object, got {type(obj).__name__}")
        return _from_mapping(number, obj, opts)

    return _per_line(path, parse)


def _decoded_lines(path: Path, where: list[int]) -> Iterator[str]:
    for number, offset, raw in _lines(path):
        where[0] = number
        try:
            yield _decode(raw, offset) + "\n"
        except _NotUtf8 as exc:
            raise FormatError(
                f"{path.name} line {number}: {_utf8_message(exc.offset)}",
                "CSV is read as UTF-8; convert it, e.g. with iconv -f latin1 -t utf-8",
            ) from exc


def _require_columns(path: Path, columns: list[str], opts: ReadOptions) -> None:
    missing = [f for f in (opts.id_field, opts.text_field) if f not in columns]
    if missing:
        raise FormatError(
            f"{path.name} has no column {', '.join(map(repr, missing))} "
            f"(columns: {', '.join(columns)})",
            "name the columns with --id-field and --text-field",
        )


def _csv(path: Path, opts: ReadOptions, delimiter: str) -> Iterator[Record | BadLine]:
    where = [0]
    reader = csv.reader(_decoded_lines(path, where), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return
    _require_columns(path, header, opts)
    start = where[0] + 1
    for row in reader:
        if any(cell.strip() for cell in row):
            if len(row) != len(header):
                yield BadLine(start, f"{len(row)} fields where the header has {len(header)}")
            else:
                yield _from_mapping(start, dict(zip(header, row, strict=True)), opts)
        start = where[0] + 1


def _parquet_file(path: Path) -> Any:
    """``pyarrow.parquet.ParquetFile`` of ``path``; pyarrow is the optional ``parquet`` extra."""
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        from embedops.errors import DependencyMissing

        missing = DependencyMissing("pyarrow", f"reading the Parquet file {path.name}")
        missing.hint = ('pip install "embedops[parquet]", or convert the file to JSONL or CSV '
                        "(--format jsonl|csv)")
        raise missing from exc
    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise FormatError(f"{path.name} is not a readable Parquet file: {exc}",
                          "check the file, or pass the format it is in with --format") from exc


def _parquet(path: Path, opts: ReadOptions) -> Iterator[Record | BadLine]:
    pfile = _parquet_file(path)
    _require_columns(path, pfile.schema_arrow.names, opts)
    row_no = 0
    for batch in pfile.iter_batches(batch_size=4096):
        for row in batch.to_pylist():
            row_no += 1
            yield _from_mapping(row_no, json.loads(json.dumps(row, default=str)), opts)


def _text(path: Path, opts: ReadOptions) -> Iterator[Record | BadLine]:
    def parse(number: int, text: str) -> Record:
        if opts.text_ids == "hash":
            return Record(number, hashlib.sha256(text.encode()).hexdigest()[:16], text)
        return Record(number, str(number), text)

    return _per_line(path, parse)
