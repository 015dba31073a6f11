"""Import and export word vectors in the common interchange formats.

* ``word2vec-text``: a ``COUNT DIM`` header line, then ``word v1 … vDIM`` per line.
* ``fasttext-vec``: fastText's ``.vec`` files, the same layout as word2vec text.
* ``glove``: like word2vec text without the header (the dimension comes from the first line).
* ``word2vec-binary``: the ``COUNT DIM`` header, then per vector the UTF-8 word, a space and
  DIM little-endian float32 values (optionally followed by a newline, as word2vec.c writes).

Words are the first whitespace-separated field of a line (GloVe files whose words contain
spaces are not supported). Files are streamed (``.gz``, ``.bz2`` and ``.xz`` are decompressed
on the fly) and numbers are parsed by numpy a chunk of lines at a time. Text is written with
9 significant digits, enough for every float32 to read back bit-exactly. Exports are atomic
(temp file, fsync, rename). The readers live in :mod:`embedops.models.format_readers`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from embedops.errors import FormatError, InvalidInput
from embedops.fsio import atomic_writer
from embedops.models.format_readers import CHUNK_LINES as _CHUNK_LINES
from embedops.models.format_readers import READ_BYTES as _READ_BYTES
from embedops.models.format_readers import BinaryReader, TextReader, open_read
from embedops.models.registry import ModelVersion, Registry
from embedops.models.static import StaticVectors
from embedops.progress import progress_bar

FORMATS = ("word2vec-text", "word2vec-binary", "glove", "fasttext-vec")


def check_format(fmt: str) -> str:
    """Return ``fmt`` if it is a known format, else raise FormatError listing the known ones."""
    if fmt not in FORMATS:
        raise FormatError(f"unknown vector format '{fmt}'", f"use one of {', '.join(FORMATS)}")
    return fmt


def import_vectors(
    path: str | os.PathLike[str],
    fmt: str,
    *,
    limit: int | None = None,
    quiet: bool | None = None,
) -> StaticVectors:
    """Read a vector file in format ``fmt`` (see ``FORMATS``) into a StaticVectors table.

    ``limit`` keeps only the first ``limit`` vectors (files are usually sorted by frequency).
    Malformed input raises FormatError naming the line (or vector) and what was expected.
    """
    check_format(fmt)
    if limit is not None and limit <= 0:
        raise InvalidInput(f"limit must be a positive integer, got {limit}")
    source = Path(path)
    if not source.is_file():
        raise InvalidInput(f"no such vector file: {source}", "check the path")
    with (
        open_read(source) as fh,
        progress_bar(f"import {source.name}", None, "vectors", quiet) as bar,
    ):
        if fmt == "word2vec-binary":
            keys, vectors = BinaryReader(fh, source, limit, bar).read()
        else:
            keys, vectors = TextReader(fh, source, fmt != "glove", limit, bar).read()
    return StaticVectors(index_to_key=keys, vectors=vectors, name=source.name)


def export_vectors(
    table: StaticVectors, path: str | os.PathLike[str], fmt: str, *, quiet: bool | None = None
) -> Path:
    """Write ``table`` to ``path`` in format ``fmt``, atomically; return the path."""
    check_format(fmt)
    bad = next((w for w in table.index_to_key if not w or w.split() != [w]), None)
    if bad is not None:
        raise FormatError(
            f"the word {bad!r} is empty or contains whitespace, which {fmt} cannot store",
            "export to a format that allows it, or rename the word",
        )
    target = Path(path)
    with (
        atomic_writer(target, _READ_BYTES) as fh,
        progress_bar(f"export {target.name}", len(table), "vectors", quiet) as bar,
    ):
        if fmt != "glove":
            fh.write(f"{len(table)} {table.dim}\n".encode())
        write = _write_binary_rows if fmt == "word2vec-binary" else _write_text_rows
        for start in range(0, len(table), _CHUNK_LINES):
            stop = min(start + _CHUNK_LINES, len(table))
            write(fh, table.index_to_key[start:stop], table.vectors[start:stop])
            bar.advance(stop - start)
    return target


def publish_import(
    registry: Registry,
    path: str | os.PathLike[str],
    fmt: str,
    name: str,
    *,
    limit: int | None = None,
    lowercase: bool | None = None,
    sif_texts: Sequence[str] | None = None,
) -> ModelVersion:
    """Import a vector file and publish it as a new version of ``name`` (atomically: a failed
    or killed import publishes nothing).

    ``lowercase`` sets the tokenizer's casing (None: lowercase unless more than 2% of the
    10,000 first words have capitals); with ``sif_texts`` SIF pooling is fitted on those texts
    and stored in the manifest.
    """
    from embedops.models.pooling import StaticEncoder
    from embedops.models.registry import check_name
    from embedops.models.static import publish_static
    from embedops.text.tokenize import TokenizerSpec

    check_format(fmt)
    check_name(name)
    table = import_vectors(path, fmt, limit=limit)
    if lowercase is None:
        sample = table.index_to_key[:10_000]
        lowercase = sum(1 for w in sample if w != w.lower()) <= 0.02 * len(sample)
    spec = TokenizerSpec(lowercase=lowercase)
    extra: dict[str, Any] = {}
    if sif_texts is not None:
        extra["pooling"] = StaticEncoder(table, spec).fit_sif(sif_texts).pooling.to_dict()
    source = Path(path)
    params = {"format": fmt, "source": source.name, "source_bytes": source.stat().st_size}
    kind = "word2vec" if fmt.startswith("word2vec") else "static"
    return publish_static(registry, name, table, kind=kind, spec=spec, params=params, **extra)


# -- writing ---------------------------------------------------------------------------------
def _write_text_rows(fh: IO[bytes], words: list[str], rows: np.ndarray) -> None:
    template = " ".join(["%.9g"] * rows.shape[1])
    lines = [f"{w} {template % tuple(r)}\n" for w, r in zip(words, rows.tolist(), strict=True)]
    fh.write("".join(lines).encode("utf-8"))


def _write_binary_rows(fh: IO[bytes], words: list[str], rows: np.ndarray) -> None:
    data = np.ascontiguousarray(rows, dtype="<f4")
    fh.write(
        b"".join(
            w.encode("utf-8") + b" " + r.tobytes() + b"\n" for w, r in zip(words, data, strict=True)
        )
    )
