"""``embedops train CORPUS --name NAME``: train word2vec or fastText vectors and publish them."""

from __future__ import annotations

from pathlib import Path

import typer

from embedops.cli._common import print_json, registry


def register(app: typer.Typer) -> None:
    """Add the ``train`` command to ``app``."""
    from embedops.train.word2vec import TrainConfig

    d = TrainConfig()

    @app.command("train")
    def train(
        corpus: Path = typer.Argument(
            ..., help="A .txt/.jsonl file (optionally .gz/.xz/.bz2) or a folder of them."
        ),
        name: str = typer.Option(..., "--name", "-n", help="Model name; a new version is added."),
        model: str = typer.Option(d.model, "--model", help="word2vec or fasttext."),
        sg: bool = typer.Option(d.sg, "--sg/--cbow", help="Skip-gram or CBOW."),
        dim: int = typer.Option(d.dim, "--dim", help="Vector dimension."),
        window: int = typer.Option(d.window, "--window", help="Context window."),
        min_count: int = typer.Option(d.min_count, "--min-count", help="Drop rarer words."),
        epochs: int = typer.Option(d.epochs, "--epochs", help="Passes over the corpus."),
        negative: int = typer.Option(d.negative, "--negative", help="Negative samples."),
        sample: float = typer.Option(d.sample, "--sample", help="Down-sampling threshold."),
        workers: int = typer.Option(d.workers, "--workers", help="Threads and processes."),
        seed: int = typer.Option(d.seed, "--seed", help="Random seed."),
        no_redact: bool = typer.Option(False, "--no-redact", help="Keep PII (not advised)."),
        phrases: bool = typer.Option(False, "--phrases", help="Learn phrases like new_york."),
        text_field: str = typer.Option(d.text_field, "--text-field", help="Text field of .jsonl."),
        replace_bad_bytes: bool = typer.Option(
            False, "--replace-bad-bytes", help="Replace non-UTF-8 bytes instead of failing."
        ),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable summary."),
    ) -> None:
        """Train static word vectors on CORPUS and publish them as a new version of NAME."""
        from embedops.train.word2vec import train_static

        config = TrainConfig(
            model=model, sg=sg, dim=dim, window=window, min_count=min_count, epochs=epochs,
            negative=negative, sample=sample, workers=workers, seed=seed,
            redact=() if no_redact else d.redact, phrases=phrases, text_field=text_field,
            replace_bad_bytes=replace_bad_bytes,
        )
        result = train_static(corpus, name, config, registry())
        summary = {
            "ref": result.version.ref,
            "kind": result.version.kind,
            "dim": result.version.dim,
            "vocab_size": result.version.manifest.get("vocab_size"),
            **result.summary,
        }
        if as_json:
            print_json(summary)
            return
        c = result.corpus
        typer.echo(f"trained {result.version.ref}")
        typer.echo(
            f"  {c.tokens:,} tokens in {c.items:,} paragraphs from {c.files} file(s)"
            + (f", {c.replaced_bytes} bad bytes replaced" if c.replaced_bytes else "")
        )
        typer.echo(
            f"  vocabulary {summary['vocab_size']:,} words, dim {result.version.dim}, "
            f"{result.train_seconds:.1f} s training at {result.words_per_second:,.0f} words/s"
        )
