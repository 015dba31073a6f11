"""``embedops embed``: encode texts with any model version and print or save the vectors."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from embedops.cli._common import engine, positive, print_json
from embedops.errors import FormatError, InvalidInput
from embedops.fsio import atomic_write_bytes
from embedops.progress import progress_bar

_OUT_KINDS = (".npy", ".jsonl")


def register(app: typer.Typer) -> None:
    """Add ``embed`` to ``app``."""
    app.command("embed")(embed)


def embed(
    ref: Annotated[str, typer.Argument(help="Model version: name, name@N or name@latest.")],
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to encode.")] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="Texts from a .txt file (one per line) or .jsonl."),
    ] = None,
    text_field: Annotated[
        str, typer.Option("--text-field", help="Field of the text in .jsonl.")
    ] = "text",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write vectors to .npy or .jsonl.")
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option("--backend", help="Transformer backend: torch, onnx, onnx-int8 or "
                     "sentence-transformers (default: the fastest one the model has)."),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Texts per batch.")] = 32,
    threads: Annotated[
        int | None, typer.Option("--threads", help="CPU threads (default: all).")
    ] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Machine-readable output: the vectors (or, with --out, a summary).")
    ] = False,
) -> None:
    """Encode texts (arguments and/or --file) and print a summary or write the vectors."""
    positive("--batch-size", batch_size)
    if out is not None and out.suffix not in _OUT_KINDS:
        raise InvalidInput(f"--out must end in .npy or .jsonl, got '{out.name}'")
    items, ids = list(texts or []), [None] * len(texts or [])
    if file is not None:
        more, more_ids = read_texts(file, text_field)
        items, ids = items + more, ids + more_ids
    if not items:
        raise InvalidInput("nothing to encode", "give TEXT arguments or --file")
    encoder, info = _encode(ref, items, backend, batch_size, threads)
    vectors, version = info.pop("vectors"), encoder.version
    _report(info)
    if out is not None:
        _write(out, version, items, ids, vectors)
    if as_json:
        body: dict[str, Any] = {"model": version, "dim": int(vectors.shape[1]),
                                "count": len(items)}
        print_json({**body, "path": str(out)} if out is not None
                   else {**body, "vectors": vectors.tolist()})
    elif out is None:
        _print_summary(version, items, vectors)
    else:
        typer.echo(f"wrote {len(items)} vectors (dim {vectors.shape[1]}) of {version} to {out}")


def read_texts(path: Path, text_field: str = "text") -> tuple[list[str], list[Any]]:
    """Texts (and ids, for .jsonl) from a UTF-8 file; a bad byte is reported with its offset."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(
            f"{path} is not UTF-8: byte 0x{raw[exc.start]:02x} at offset {exc.start}",
            "convert it, e.g. 'iconv -f latin1 -t utf-8'",
        ) from exc
    lines = content.splitlines()
    if path.suffix != ".jsonl":
        return lines, [None] * len(lines)
    texts, ids = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FormatError(f"{path} line {number} is not JSON: {exc.msg}") from exc
        text = row.get(text_field) if isinstance(row, dict) else None
        if not isinstance(text, str):
            raise FormatError(
                f"{path} line {number} has no string field '{text_field}'",
                "name the field with --text-field",
            )
        texts.append(text)
        ids.append(row.get("id"))
    return texts, ids


def _encode(
    ref: str, items: list[str], backend: str | None, batch_size: int, threads: int | None
) -> tuple[Any, dict[str, Any]]:
    with engine() as eo:
        mv = eo.models.resolve(ref)
        if mv.kind == "transformer":
            enc: Any = eo.models.encoder(ref, backend=backend, threads=threads)
            vectors, info = enc.encode_with_info(items, batch_size=batch_size, progress=True)
            return enc, {"vectors": vectors, **info.to_dict(), "backend": enc.backend}
        encoder = eo.models.encoder(ref, backend=backend, threads=threads)
    parts = []
    with progress_bar("encoding", len(items), "texts") as bar:
        for start in range(0, len(items), batch_size):
            parts.append(encoder.encode(items[start : start + batch_size], batch_size=batch_size))
            bar.advance(len(parts[-1]))
    return encoder, {"vectors": np.vstack(parts).astype(np.float32)}


def _report(info: dict[str, Any]) -> None:
    if info.get("truncated"):
        print(
            f"note: {info['truncated']} text(s) longer than the model's token limit were "
            f"truncated ({info['cut_chars']} very long one(s) cut before tokenizing)",
            file=sys.stderr,
        )
    if info.get("empty"):
        shown = ", ".join(str(i) for i in info["empty"][:10])
        print(
            f"note: {len(info['empty'])} empty text(s) got the zero vector (positions {shown})",
            file=sys.stderr,
        )


def _print_summary(version: str, items: list[str], vectors: np.ndarray) -> None:
    typer.echo(f"{version}: {len(items)} vectors, dim {vectors.shape[1]}")
    for i, (text, vec) in enumerate(zip(items, vectors, strict=True)):
        head = " ".join(f"{x:+.4f}" for x in vec[:4])
        short = text if len(text) <= 40 else text[:37] + "..."
        typer.echo(f"{i:>4}  norm {np.linalg.norm(vec):.3f}  [{head} ...]  {short!r}")
        if i == 19 and len(items) > 20:
            typer.echo(f"... {len(items) - 20} more (use --out to save them all)")
            break


def _write(
    out: Path, version: str, items: list[str], ids: list[Any], vectors: np.ndarray
) -> None:
    if out.suffix == ".npy":
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
        atomic_write_bytes(out, buf.getvalue())
        return
    lines = (
        json.dumps({"index": i, "id": ids[i], "model": version, "vector": vectors[i].tolist()})
        for i in range(len(items))
    )
    atomic_write_bytes(out, ("\n".join(lines) + "\n").encode())
