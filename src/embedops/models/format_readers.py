"""Streaming readers of word-vector files (the formats of :mod:`embedops.models.formats`).

``TextReader`` parses word2vec text, fastText ``.vec`` and GloVe files a chunk of lines at a
time with numpy; ``BinaryReader`` reads word2vec's binary layout. Both name the line (or vector)
and what was expected when the input is malformed, and refuse NaN, infinite and repeated words.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from embedops.errors import FormatError

CHUNK_LINES = 4096
READ_BYTES = 1 << 20
_OPENERS: dict[str, Callable[..., Any]] = {
    ".gz": gzip.open,
    ".bz2": bz2.open,
    ".xz": lzma.open,
}


@contextlib.contextmanager
def open_read(path: Path) -> Iterator[IO[bytes]]:
    """``path`` opened for binary reading (decompressed by suffix); read errors raised inside
    the block become a FormatError."""
    opener = _OPENERS.get(path.suffix.lower())
    fh: IO[bytes] = opener(path, "rb") if opener else open(path, "rb", buffering=READ_BYTES)
    try:
        yield fh
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise FormatError(f"cannot read {path.name}: {exc}", "is the file complete?") from exc
    finally:
        fh.close()


def _parse_header(raw: bytes, path: Path) -> tuple[int, int]:
    parts = raw.split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or int(parts[1]) == 0:
        shown = raw[:60].decode("utf-8", "replace").strip()
        raise FormatError(
            f"line 1 of {path.name} should be the header 'COUNT DIM', found '{shown}'",
            "use --format glove for files without a header",
        )
    return int(parts[0]), int(parts[1])


class TextReader:
    """word2vec text, fastText .vec and GloVe: a word and its numbers on each line."""

    def __init__(self, fh: IO[bytes], path: Path, header: bool, limit: int | None, bar: object):
        self.fh, self.path, self.header, self.limit, self.bar = fh, path, header, limit, bar
        self.expected: int | None = None
        self.dim = 0
        self.keys: list[str] = []
        self.blocks: list[np.ndarray] = []
        self.line_no = 0

    def read(self) -> tuple[list[str], np.ndarray]:
        """All vectors of the file: (words, float32 array)."""
        if self.header:
            first = self.fh.readline()
            if not first.strip():
                raise FormatError(f"{self.path.name} is empty", "export the vectors again")
            self.line_no = 1
            self.expected, self.dim = _parse_header(first, self.path)
            self.bar.update(total=self.expected if self.limit is None else self.limit)  # type: ignore[attr-defined]
        words: list[str] = []
        rests: list[str] = []
        lines: list[int] = []
        for raw in self.fh:
            self.line_no += 1
            word, rest = self._split(raw)
            if word is None:
                continue
            if len(self.keys) + len(words) == self.expected:
                raise FormatError(
                    f"the header of {self.path.name} says {self.expected} vectors, "
                    f"line {self.line_no} holds one more",
                    "the header is wrong; fix its count",
                )
            words.append(word)
            rests.append(rest)
            lines.append(self.line_no)
            if len(words) >= CHUNK_LINES or len(self.keys) + len(words) == self.limit:
                self._flush(words, rests, lines)
                words, rests, lines = [], [], []
                if len(self.keys) == self.limit:
                    break
        self._flush(words, rests, lines)
        return self._finish()

    def _split(self, raw: bytes) -> tuple[str | None, str]:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FormatError(
                f"line {self.line_no} of {self.path.name} is not valid UTF-8 ({exc.reason} at "
                f"byte {exc.start})",
                "re-encode the file as UTF-8 (or, if it is binary, use --format word2vec-binary)",
            ) from exc
        parts = text.split(maxsplit=1)
        if not parts:
            return None, ""
        rest = parts[1] if len(parts) == 2 else ""
        if not self.dim:
            self.dim = len(rest.split())
            if not self.dim:
                raise FormatError(f"line {self.line_no} of {self.path.name} has no numbers")
        return parts[0], rest

    def _flush(self, words: list[str], rests: list[str], lines: list[int]) -> None:
        if not words:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                values = np.fromstring(" ".join(rests), dtype=np.float32, sep=" ")
            except (ValueError, DeprecationWarning):
                values = np.empty(0, dtype=np.float32)
        if values.size != len(words) * self.dim:
            self._diagnose(rests, lines)
        block = values.reshape(len(words), self.dim)
        if not np.isfinite(block).all():
            row = int(np.flatnonzero(~np.isfinite(block).all(axis=1))[0])
            raise FormatError(
                f"line {lines[row]} of {self.path.name} has a NaN or infinite value",
                "vectors must be finite numbers",
            )
        self._store(block)
        self.keys.extend(words)
        self.bar.advance(len(words))  # type: ignore[attr-defined]

    def _store(self, block: np.ndarray) -> None:
        """Keep a parsed block: in one preallocated array when the header gives the count
        (no second copy of a large file at the end), else in a list (GloVe)."""
        if self.expected is None:
            self.blocks.append(block)
            return
        if not self.blocks:
            n = self.expected if self.limit is None else min(self.expected, self.limit)
            self.blocks.append(np.empty((n, self.dim), dtype=np.float32))
        start = len(self.keys)
        self.blocks[0][start : start + len(block)] = block

    def _diagnose(self, rests: list[str], lines: list[int]) -> None:
        """Find the first bad line of a chunk that failed the fast parse, and say why."""
        for rest, line_no in zip(rests, lines, strict=True):
            tokens = rest.split()
            where = f"line {line_no} of {self.path.name}"
            for token in tokens:
                try:
                    float(token)
                except ValueError:
                    raise FormatError(
                        f"{where}: '{token[:40]}' is not a number", "fix or remove that line"
                    ) from None
            if len(tokens) != self.dim:
                raise FormatError(
                    f"{where} has a vector of dimension {len(tokens)}, expected {self.dim}",
                    "every vector must have the dimension of the header (or of the first line)",
                )
        raise FormatError(f"cannot parse the numbers near line {lines[0]} of {self.path.name}")

    def _finish(self) -> tuple[list[str], np.ndarray]:
        n = len(self.keys)
        if self.expected is not None and self.limit is None and n != self.expected:
            raise FormatError(
                f"the header of {self.path.name} says {self.expected} vectors, the file has {n}",
                "the file is truncated or its header is wrong",
            )
        if n == 0:
            raise FormatError(f"{self.path.name} has no vectors", "is it the right file?")
        _check_unique(self.keys, self.path)
        if self.expected is not None:
            return self.keys, self.blocks[0][:n]
        return self.keys, np.concatenate(self.blocks) if len(self.blocks) > 1 else self.blocks[0]


class BinaryReader:
    """word2vec binary: header line, then ``word<space><dim float32>`` per vector."""

    def __init__(self, fh: IO[bytes], path: Path, limit: int | None, bar: object):
        self.fh, self.path, self.limit, self.bar = fh, path, limit, bar
        self.buf = b""
        self.pos = 0

    def read(self) -> tuple[list[str], np.ndarray]:
        """All vectors of the file: (words, float32 array)."""
        first = self.fh.readline()
        if not first.strip():
            raise FormatError(f"{self.path.name} is empty", "export the vectors again")
        count, dim = _parse_header(first, self.path)
        n = count if self.limit is None else min(count, self.limit)
        self.bar.update(total=n)  # type: ignore[attr-defined]
        vectors = np.empty((n, dim), dtype=np.float32)
        keys: list[str] = []
        width = 4 * dim
        for i in range(n):
            keys.append(self._word(i, count))
            if not self._fill(width):
                self._truncated(i, count)
            vectors[i] = np.frombuffer(self.buf, dtype="<f4", count=dim, offset=self.pos)
            self.pos += width
            if i % CHUNK_LINES == CHUNK_LINES - 1 or i == n - 1:
                self.bar.advance(i % CHUNK_LINES + 1)  # type: ignore[attr-defined]
        if self.limit is None and self._fill(1) and self.buf[self.pos :].strip():
            raise FormatError(
                f"{self.path.name} has data after the {count} vectors its header announces",
                "the header is wrong, or the file is not word2vec binary",
            )
        if n == 0:
            raise FormatError(f"{self.path.name} has no vectors", "is it the right file?")
        if not np.isfinite(vectors).all():
            row = int(np.flatnonzero(~np.isfinite(vectors).all(axis=1))[0])
            raise FormatError(f"vector {row + 1} ('{keys[row]}') of {self.path.name} is not finite")
        _check_unique(keys, self.path)
        return keys, vectors

    def _fill(self, need: int) -> bool:
        """Make at least ``need`` unread bytes available; False at end of file."""
        while len(self.buf) - self.pos < need:
            more = self.fh.read(READ_BYTES)
            if not more:
                return False
            self.buf = self.buf[self.pos :] + more
            self.pos = 0
        return True

    def _word(self, i: int, count: int) -> str:
        while (end := self.buf.find(b" ", self.pos)) < 0:
            if not self._fill(len(self.buf) - self.pos + 1):
                self._truncated(i, count)
        raw = self.buf[self.pos : end].lstrip(b"\n\r")
        self.pos = end + 1
        try:
            word = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FormatError(
                f"the word of vector {i + 1} in {self.path.name} is not valid UTF-8",
                "the file may not be word2vec binary, or it is corrupt",
            ) from exc
        if not word or len(raw) > 1000:
            raise FormatError(
                f"vector {i + 1} of {self.path.name} has no readable word",
                "the file may be word2vec text (use --format word2vec-text) or corrupt",
            )
        return word

    def _truncated(self, i: int, count: int) -> None:
        raise FormatError(
            f"{self.path.name} is truncated: read {i} of {count} vectors",
            "copy or export the file again",
        )


def _check_unique(keys: list[str], path: Path) -> None:
    seen: set[str] = set()
    for i, key in enumerate(keys):
        if key in seen:
            raise FormatError(
                f"the word '{key}' appears twice in {path.name} (vector {i + 1})",
                "each word may appear once",
            )
        seen.add(key)
