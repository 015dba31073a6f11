"""``embedops train CORPUS --name NAME``: train word2vec or fastText vectors and publish them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from embedops.cli._common import engine, print_json
from embedops.engine.options import TrainConfig, TrainResult

_D = TrainConfig()


def register(app: typer.Typer) -> None:
    """Add the ``train`` command to ``app``."""
    app.command("train")(train)


def train(
    corpus: Annotated[
        Path, typer.Argument(help="A .txt/.jsonl file (optionally .gz/.xz/.bz2) or a folder.")
    ],
    name: Annotated[str, typer.Option("--name", "-n", help="Model name; adds a version.")],
    model: Annotated[str, typer.Option("--model", help="word2vec or fasttext.")] = _D.model,
    sg: Annotated[bool, typer.Option("--sg/--cbow", help="Skip-gram or CBOW.")] = _D.sg,
    dim: Annotated[int, typer.Option("--dim", help="Vector dimension.")] = _D.dim,
    window: Annotated[int, typer.Option("--window", help="Context window.")] = _D.window,
    min_count: Annotated[
        int, typer.Option("--min-count", help="Drop words seen fewer times.")
    ] = _D.min_count,
    epochs: Annotated[int, typer.Option("--epochs", help="Passes over the corpus.")] = _D.epochs,
    negative: Annotated[int, typer.Option("--negative", help="Negative samples.")] = _D.negative,
    sample: Annotated[float, typer.Option("--sample", help="Down-sampling threshold.")] = _D.sample,
    workers: Annotated[int, typer.Option("--workers", help="Threads/processes.")] = _D.workers,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = _D.seed,
    no_redact: Annotated[bool, typer.Option("--no-redact", help="Keep PII (not advised).")] = False,
    phrases: Annotated[bool, typer.Option("--phrases", help="Learn phrases (new_york).")] = False,
    text_field: Annotated[
        str, typer.Option("--text-field", help="Field holding the text in .jsonl files.")
    ] = _D.text_field,
    replace_bad_bytes: Annotated[
        bool, typer.Option("--replace-bad-bytes", help="Replace non-UTF-8 bytes, don't fail.")
    ] = False,
    device: Annotated[
        str | None,
        typer.Option("--device", help="auto, cpu, cuda or cuda:N: train word2vec with the torch "
                     "trainer (GPU); default: gensim on the CPU."),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Torch trainer: pairs per batch.")
    ] = _D.batch_size,
    update: Annotated[
        str, typer.Option("--update", help="Torch trainer: adagrad (large-batch stable) or sgd.")
    ] = _D.update,
    dp_epsilon: Annotated[
        float | None,
        typer.Option("--dp-epsilon", help="Differentially private word2vec (torch trainer, one "
                     "sentence a privacy unit): the epsilon to spend; needs embedops[privacy]."),
    ] = None,
    dp_noise: Annotated[
        float | None, typer.Option("--dp-noise", help="DP: the noise multiplier instead of an "
                                   "epsilon (the epsilon spent is reported).")
    ] = None,
    dp_clip: Annotated[
        float, typer.Option("--dp-clip", help="DP: bound of each sentence's gradient (L2).")
    ] = _D.dp_clip,
    dp_delta: Annotated[
        float | None, typer.Option("--dp-delta", help="DP: delta (default 1/N sentences).")
    ] = None,
    dp_lot: Annotated[
        int | None,
        typer.Option("--dp-lot", help="DP: expected sentences per step (Poisson "
                     "sampling; default 512). Larger lots with fewer steps carry more signal "
                     "per unit of noise: thousands suit corpora of 50k+ lines."),
    ] = None,
    dp_max_vocab: Annotated[
        int | None,
        typer.Option("--dp-max-vocab", help="DP: keep only the N most frequent words "
                     "(every kept row is noised at every step; rare words get no usable "
                     "signal). Which words are kept is not covered by the guarantee."),
    ] = None,
    dp_frozen_output: Annotated[
        bool,
        typer.Option("--dp-frozen-output/--dp-trained-output", help="DP: keep the output "
                     "(context) table at a fixed random start and train and save the input "
                     "vectors alone, so each sentence's clip budget and the noise go to its "
                     "input rows (better utility at a given epsilon)."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable summary.")] = False,
) -> None:
    """Train static word vectors on CORPUS and publish them as a new version of NAME."""
    config = TrainConfig(
        model=model, sg=sg, dim=dim, window=window, min_count=min_count, epochs=epochs,
        negative=negative, sample=sample, workers=workers, seed=seed,
        redact=() if no_redact else _D.redact, phrases=phrases, text_field=text_field,
        replace_bad_bytes=replace_bad_bytes, device=device, batch_size=batch_size, update=update,
        dp_epsilon=dp_epsilon, dp_noise=dp_noise, dp_clip=dp_clip, dp_delta=dp_delta,
        dp_lot=dp_lot, dp_max_vocab=dp_max_vocab, dp_frozen_output=dp_frozen_output,
    )
    with engine() as eo:
        result = eo.models.train(corpus, name, config)
    if as_json:
        mv = result.version
        print_json({"ref": mv.ref, "kind": mv.kind, "dim": mv.dim,
                    "vocab_size": mv.manifest.get("vocab_size"), **result.summary})
    else:
        _print_summary(result)
    for warning in result.summary.get("warnings", []):
        typer.echo(f"warning: {warning}", err=True)


def _print_summary(result: TrainResult) -> None:
    mv, c = result.version, result.corpus
    typer.echo(f"trained {mv.ref}")
    replaced = f", {c.replaced_bytes} bad bytes replaced" if c.replaced_bytes else ""
    typer.echo(f"  {c.tokens:,} tokens in {c.items:,} paragraphs from {c.files} file(s){replaced}")
    typer.echo(
        f"  vocabulary {mv.manifest.get('vocab_size', 0):,} words, dim {mv.dim}, "
        f"{result.train_seconds:.1f} s training at {result.words_per_second:,.0f} words/s"
    )
    dp = result.summary.get("privacy")
    if dp:
        typer.echo(f"  differentially private: epsilon {dp['epsilon']:.2f} at delta "
                   f"{dp['delta']:.2g} per sentence (noise {dp['noise_multiplier']:.2f}, clip "
                   f"{dp['clip']:g}, {dp['steps']} steps of about "
                   f"{dp['sample_rate'] * dp['sentences']:,.0f} sentences)")
