"""``embedops distill`` and ``embedops finetune``: new model versions made from a transformer."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from embedops.cli._common import engine, positive, print_json
from embedops.errors import InvalidInput

if TYPE_CHECKING:
    from embedops.engine.options import ModelVersion


_JSON = typer.Option(False, "--json", help="Machine-readable output.")
#: Off by default: fitted on 10,000 lines of a general corpus, recall@10 on the revdict dev
#: queries moved by under a point either way (docs/benchmarks/distill.md); worth trying with
#: a corpus from the collection's own domain.
FIT_TEXTS = 0
FIT_RIDGE = 1.0


def _summary(mv: ModelVersion) -> dict[str, object]:
    keys = ("kind", "dim", "vocab_size", "parent", "eval", "build_seconds")
    return {"ref": mv.ref, **{k: mv.manifest.get(k) for k in keys if k in mv.manifest}}


def _show(mv: ModelVersion, as_json: bool) -> None:
    """The new version: one line, or its summary as JSON."""
    summary = _summary(mv)
    if as_json:
        print_json(summary)
        return
    extra = "".join(f", {k} {summary[k]}" for k in ("vocab_size", "parent") if k in summary)
    typer.echo(f"made {mv.ref} ({summary.get('kind')}, dim {summary.get('dim')}{extra})")
    for name, value in dict(mv.manifest.get("eval") or {}).items():
        typer.echo(f"  {name}: {value}")


def _existing_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise InvalidInput(f"{what} '{path}' does not exist or is not a file", "check the path")
    return path


def register(app: typer.Typer) -> None:
    """Add ``distill`` and ``finetune`` to ``app``."""

    @app.command("distill")
    def distill_(
        parent: str = typer.Argument(..., help="Transformer to distill: name, name@N."),
        name: str = typer.Option(..., "--name", help="Name of the new static model."),
        dim: int = typer.Option(256, "--dim", help="PCA dimensions (0 keeps the transformer's)."),
        corpus: Path | None = typer.Option(
            None, "--corpus", help="Text file whose frequent words join the vocabulary."
        ),
        max_words: int = typer.Option(100_000, "--max-words", help="Corpus words to add."),
        min_count: int = typer.Option(3, "--min-count", help="Ignore rarer corpus words."),
        tokenizer_words: bool = typer.Option(
            True,
            "--tokenizer-words/--no-tokenizer-words",
            help="Include the whole words of the transformer's own vocabulary.",
        ),
        fit_texts: int = typer.Option(
            FIT_TEXTS,
            "--fit-texts",
            help="Corpus lines whose transformer vectors the word table is fitted to "
            "(0: no fitting; needs --corpus).",
        ),
        fit_ridge: float = typer.Option(
            FIT_RIDGE, "--fit-ridge", help="Pull of the fit back to the plain word vectors."
        ),
        as_json: bool = _JSON,
    ) -> None:
        """Distill a transformer into a fast static model (model2vec-style, then fitted to
        the transformer's sentence vectors over corpus lines)."""
        from embedops.engine.options import DistillConfig

        if dim < 0:
            raise InvalidInput(f"--dim must be >= 0, got {dim}", "0 keeps the transformer's dim")
        if fit_texts < 0:
            raise InvalidInput(f"--fit-texts must be >= 0, got {fit_texts}", "0 turns fitting off")
        config = DistillConfig(
            dim=dim or None,
            max_corpus_words=max_words,
            min_count=min_count,
            tokenizer_words=tokenizer_words,
            fit_texts=fit_texts,
            fit_ridge=fit_ridge,
        )
        source = _existing_file(corpus, "corpus") if corpus is not None else None
        with engine() as eo:
            mv = eo.models.distill(parent, name, config, source)
        _show(mv, as_json)

    @app.command("finetune")
    def finetune_(
        parent: str = typer.Argument(..., help="Transformer to fine-tune: name, name@N."),
        train: Path = typer.Argument(..., help='JSONL of {"anchor","positive"[,"negative"]}.'),
        name: str = typer.Option(..., "--name", help="Name of the new transformer model."),
        heldout: Path | None = typer.Option(
            None, "--eval", help="Held-out JSONL pairs: recall before/after goes in the manifest."
        ),
        epochs: int = typer.Option(1, "--epochs", help="Passes over the pairs."),
        batch_size: int = typer.Option(32, "--batch-size", help="Pairs per step (the "
                                       "in-batch negatives)."),
        learning_rate: float = typer.Option(2e-5, "--lr", help="AdamW learning rate."),
        hard_negatives: bool = typer.Option(
            False, "--hard-negatives", help="Mine a hard negative per pair with the current model."
        ),
        seed: int = typer.Option(0, "--seed", help="Random seed (shuffling, negatives)."),
        onnx: bool = typer.Option(True, "--onnx/--no-onnx", help="Build ONNX files for serving."),
        as_json: bool = _JSON,
    ) -> None:
        """Contrastive fine-tuning (in-batch negatives) of a transformer on text pairs."""
        from embedops.engine.options import FinetuneConfig

        config = FinetuneConfig(
            epochs=positive("--epochs", epochs),
            batch_size=positive("--batch-size", batch_size),
            learning_rate=learning_rate,
            hard_negatives=hard_negatives,
            seed=seed,
        )
        train_file = _existing_file(train, "training file")
        eval_file = _existing_file(heldout, "--eval file") if heldout is not None else None
        with engine() as eo:
            mv = eo.models.finetune(parent, name, train_file, eval_file, config, onnx=onnx)
        _show(mv, as_json)
