"""``embedops import|export|similar|analogy|eval``: word vectors in and out, queried, evaluated."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from embedops.cli._common import engine, positive, print_json
from embedops.engine.options import VECTOR_FORMATS as FORMATS
from embedops.errors import InvalidInput

_FORMAT_HELP = f"One of: {', '.join(FORMATS)}."
_CASES = ("auto", "lower", "keep")
_Ref = Annotated[str, typer.Argument(help="Model: name, name@N or name@latest.")]
_Format = Annotated[str, typer.Option("--format", "-f", help=_FORMAT_HELP)]
_Method = Annotated[str, typer.Option(help="Analogy method: 3cosadd or 3cosmul.")]
_Json = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def register(app: typer.Typer) -> None:
    """Add ``import``, ``export``, ``similar``, ``analogy`` and ``eval`` to ``app``."""
    app.command("import")(import_)
    app.command("export")(export)
    app.command("similar")(similar)
    app.command("analogy")(analogy)
    app.command("eval")(eval_)


def import_(
    file: Annotated[Path | None, typer.Argument(help="Vector file (.gz/.bz2/.xz too).")] = None,
    fmt: _Format = "word2vec-text",
    name: Annotated[str | None, typer.Option("--name", "-n", help="Default: file stem.")] = None,
    limit: Annotated[int | None, typer.Option(help="Keep only the first N vectors.")] = None,
    case: Annotated[str, typer.Option(help="Tokenizer casing: lower, keep or auto.")] = "auto",
    transformer: Annotated[
        str | None, typer.Option(help="Import a sentence-transformers model: 'minilm' (ships "
                                 "with embedops), a model folder, or a Hugging Face id with "
                                 "--allow-download.")
    ] = None,
    allow_download: Annotated[
        bool, typer.Option("--allow-download", help="Let --transformer fetch a Hugging Face id "
                           "from the network (off by default: embedops never downloads "
                           "unasked).")
    ] = False,
    sif_sample: Annotated[
        Path | None,
        typer.Option(help="Texts (one per line, or JSONL with 'text') to fit SIF pooling on."),
    ] = None,
    as_json: _Json = False,
) -> None:
    """Import word vectors (or, with --transformer, a transformer) as a new model version."""
    if transformer is not None:
        with engine() as eo:
            mv = eo.models.import_transformer(transformer, name, allow_download)
        _done(as_json, mv, f"imported {mv.ref} (transformer, dim {mv.dim})")
        return
    if file is None:
        raise InvalidInput("import needs a vector FILE (or --transformer NAME_OR_PATH)")
    if case not in _CASES:
        raise InvalidInput(f"unknown --case '{case}'", f"use one of {', '.join(_CASES)}")
    sif_texts = _read_texts(sif_sample) if sif_sample is not None else None
    with engine() as eo:
        mv = eo.models.import_vectors(file, fmt, name, limit=limit,
                                      lowercase=None if case == "auto" else case == "lower",
                                      sif_texts=sif_texts)
    _done(as_json, mv, f"imported {mv.ref} ({mv.manifest['vocab_size']} words, dim {mv.dim})")


def _done(as_json: bool, mv: Any, line: str) -> None:
    """Print what a command made: ``line``, or the version's summary as JSON."""
    if as_json:
        keys = ("name", "version", "kind", "dim", "vocab_size", "parent", "created_at")
        print_json({"ref": mv.ref, **{k: mv.manifest.get(k) for k in keys}})
    else:
        typer.echo(line)


def export(
    ref: _Ref,
    file: Annotated[Path, typer.Argument(help="Output file (written atomically).")],
    fmt: _Format = "word2vec-text",
    as_json: _Json = False,
) -> None:
    """Export a static model's word vectors."""
    with engine() as eo:
        mv = eo.models.export(ref, file, fmt)
        table = eo.models.table(mv.ref)
    if as_json:
        print_json({"ref": mv.ref, "words": len(table), "dim": table.dim, "path": str(file),
                    "format": fmt})
        return
    typer.echo(f"exported {mv.ref} ({len(table)} words, dim {table.dim}) to {file}")


def similar(
    ref: _Ref,
    word: Annotated[str, typer.Argument(help="Query word.")],
    k: Annotated[int, typer.Option("-k", help="How many neighbours.")] = 10,
    as_json: _Json = False,
) -> None:
    """The words nearest to WORD by cosine similarity."""
    positive("-k", k)
    table = _table(ref)
    _show_neighbours(table.most_similar(word, k), as_json, f"nearest to '{word}' in {table.name}")


def analogy(
    ref: _Ref,
    a: Annotated[str, typer.Argument(help="a, in a : b :: c : ?")],
    b: Annotated[str, typer.Argument(help="b")],
    c: Annotated[str, typer.Argument(help="c")],
    method: _Method = "3cosadd",
    k: Annotated[int, typer.Option("-k", help="How many answers.")] = 5,
    as_json: _Json = False,
) -> None:
    """Solve A : B :: C : ? (e.g. man king woman -> queen)."""
    positive("-k", k)
    table = _table(ref)
    answers = table.analogy(a, b, c, k, method=method)
    _show_neighbours(answers, as_json, f"{a} : {b} :: {c} : ? ({method}, {table.name})")


def eval_(
    ref: _Ref,
    suite: Annotated[
        list[str] | None,
        typer.Option(help="wordsim353, simlex999, google-analogy (repeatable; default all)."),
    ] = None,
    pairs: Annotated[list[Path] | None, typer.Option(help="A 'word1 word2 score' file.")] = None,
    analogies: Annotated[
        list[Path] | None, typer.Option(help="A questions-words analogy file.")
    ] = None,
    method: _Method = "3cosadd",
    restrict_vocab: Annotated[int, typer.Option(help="Use only the top N words.")] = 300_000,
    postprocess: Annotated[
        list[str] | None,
        typer.Option(help="Compare post-processing steps, e.g. pca:128, int8 (repeatable)."),
    ] = None,
    as_json: _Json = False,
) -> None:
    """Evaluate word similarity and analogies; scores are stored in the model's manifest."""
    positive("--restrict-vocab", restrict_vocab)
    suite, pairs, analogies, postprocess = (
        suite or [],
        pairs or [],
        analogies or [],
        postprocess or [],
    )
    out: dict[str, Any] = {}
    with engine() as eo:
        if suite or pairs or analogies or not postprocess:
            results = eo.models.evaluate(ref, suites=suite, pairs=pairs, analogies=analogies,
                                         method=method, restrict_vocab=restrict_vocab)
            out = {key: r.to_dict() for key, r in results.items()}
        if postprocess:
            out["postprocess"] = eo.models.postprocess_report(ref, postprocess)
    if as_json:
        print_json(out)
        return
    _print_eval(ref, out)


# -- helpers ---------------------------------------------------------------------------------
def _read_texts(path: Path) -> list[str]:
    """Texts of a sample file: one per line, or JSONL objects with a ``text`` field."""
    import json

    if not path.is_file():
        raise InvalidInput(f"no such text sample file: {path}", "check the path")
    texts = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, start=1):
            if line.lstrip().startswith("{"):
                try:
                    line = str(json.loads(line)["text"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise InvalidInput(
                        f"line {line_no} of {path.name} is not JSON with a 'text' field",
                        "use one text per line, or JSONL objects with 'text'",
                    ) from exc
            if line.strip():
                texts.append(line)
    return texts


def _table(ref: str) -> Any:
    with engine() as eo:
        return eo.models.table(ref)


def _show_neighbours(rows: list[tuple[str, float]], as_json: bool, title: str) -> None:
    if as_json:
        print_json([{"word": w, "score": s} for w, s in rows])
        return
    _print_table(
        title, ["rank", "word", "cosine"], [[i, w, f"{s:.4f}"] for i, (w, s) in enumerate(rows, 1)]
    )


def _print_eval(ref: str, out: dict[str, Any]) -> None:
    rows = []
    for key, r in out.items():
        if key == "postprocess":
            continue
        if r["kind"] == "pairs":
            score = f"spearman {_fmt(r['spearman'])}  pearson {_fmt(r['pearson'])}"
            rows.append([key, score, r["n_pairs"], f"{r['oov_rate']:.1%}"])
        else:
            score = f"accuracy {r['accuracy']:.4f} ({r['correct']}/{r['evaluated']})"
            rows.append([key, score, r["evaluated"] + r["n_oov"], f"{r['oov_rate']:.1%}"])
            rows += [
                [f"  {s['name']}", f"{s['accuracy']:.4f}", s["evaluated"] + s["n_oov"], ""]
                for s in r["sections"]
            ]
    if rows:
        _print_table(f"intrinsic evaluation of {ref}", ["suite", "score", "items", "oov"], rows)
    report = out.get("postprocess")
    if report:
        columns = list(dict.fromkeys(k for row in report for k in row))
        _print_table(
            "post-processing", columns, [[row.get(c, "") for c in columns] for row in report]
        )


def _print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*(_fmt(v) for v in row))
    Console().print(table)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)
