"""``embedops quickstart``: the demo job, on data that ships with embedops.

It trains fastText vectors on the 117,659 WordNet glosses, shows nearest neighbours, builds a
vector for a word the model never saw (from its character n-grams), and scores the model on
WS353, SimLex-999 and the Google analogies. Each stage is a small step function taking the
shared ``Quickstart`` state, listed in ``STEPS``; later stages (ingest, index, search, serve)
are added as further steps.
"""

from __future__ import annotations

import json
import lzma
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from embedops.cli._common import engine, print_json

if TYPE_CHECKING:
    from embedops.engine import Embedops

NEIGHBOUR_WORDS = ("king", "river", "music", "doctor", "computer")
OOV_WORDS = ("musicianship", "photosynthesising")


@dataclass
class Quickstart:
    """State shared by the steps: the engine, the model trained, and what steps produce."""

    api: Embedops
    name: str = "quickstart"
    epochs: int = 5
    model_ref: str | None = None
    table: Any = None
    results: dict[str, Any] = field(default_factory=dict)
    silent: bool = False

    def say(self, text: str = "") -> None:
        """Print a line of the demo's output (nothing when ``silent``, e.g. for ``--json``)."""
        if not self.silent:
            typer.echo(text)


def step_train(qs: Quickstart) -> None:
    """Train fastText on the shipped WordNet glosses and publish it."""
    from embedops.engine.options import TrainConfig

    qs.say("1. train fastText on the WordNet glosses shipped with embedops")
    # Skip-gram with the default window/sampling, measured on this 1.7M-token corpus: WS353
    # 0.39, SimLex 0.18, Google 0.42 in 5 epochs, against 0.25 / 0.10 / 0.37 for CBOW in 10
    # epochs (which also took longer).
    config = TrainConfig(model="fasttext", sg=True, epochs=qs.epochs, min_count=3, bucket=100_000)
    staging = qs.api.workspace.staging_dir
    with tempfile.TemporaryDirectory(prefix="quickstart.", dir=staging) as tmp:
        corpus = write_gloss_corpus(Path(tmp) / "glosses.txt")
        result = qs.api.models.train(corpus, qs.name, config)
    qs.model_ref = result.version.ref
    qs.table = qs.api.models.table(result.version.ref)
    qs.results["train"] = result.summary
    qs.say(
        f"   {qs.model_ref}: {len(qs.table):,} words, dim {qs.table.dim}, "
        f"{result.corpus.tokens:,} tokens, {result.train_seconds:.1f} s "
        f"({result.words_per_second:,.0f} words/s)"
    )


def write_gloss_corpus(path: Path) -> Path:
    """Write one line per WordNet synset, its words then its gloss ("king, male sovereign;
    ruler of a kingdom"): the headwords share contexts with their definitions, which gives
    far better neighbours than the glosses alone."""
    from embedops.data import wordnet_glosses_path

    with lzma.open(wordnet_glosses_path(), "rt", encoding="utf-8") as src, open(
        path, "w", encoding="utf-8"
    ) as dst:
        for line in src:
            synset = json.loads(line)
            dst.write(", ".join(synset["lemmas"]) + ", " + synset["gloss"] + "\n")
    return path


def step_neighbours(qs: Quickstart) -> None:
    """Print the nearest neighbours of a few common words."""
    qs.say("2. nearest neighbours")
    for word in NEIGHBOUR_WORDS:
        if word in qs.table:
            near = ", ".join(w for w, _ in qs.table.most_similar(word, k=5))
            qs.say(f"   {word:<10} {near}")


def step_oov(qs: Quickstart) -> None:
    """Build vectors for words not in the vocabulary from their character n-grams."""
    qs.say("3. words the model never saw, built from character n-grams")
    for word in OOV_WORDS:
        status = "in vocabulary" if word in qs.table else "not in vocabulary"
        near = ", ".join(w for w, _ in qs.table.most_similar(qs.table.vector(word), k=5))
        qs.say(f"   {word} ({status}): {near}")


def step_evaluate(qs: Quickstart) -> None:
    """Score the model on WS353, SimLex-999 and the Google analogies (stored in its manifest)."""
    qs.say("4. intrinsic evaluation (recorded in the model's manifest)")
    assert qs.model_ref is not None
    results = qs.api.models.evaluate(qs.model_ref)
    for suite, result in results.items():
        d = result.to_dict()
        score = d.get("spearman") if d.get("kind") == "pairs" else d.get("accuracy")
        label = "Spearman" if d.get("kind") == "pairs" else "accuracy"
        qs.say(f"   {suite:<15} {label} {score:.3f}  (out of vocabulary {d['oov_rate']:.1%})")
        qs.results[suite] = d


def _all_steps() -> list[Callable[[Quickstart], None]]:
    from embedops.cli import quickstart_search

    return [step_train, step_neighbours, step_oov, step_evaluate, *quickstart_search.STEPS]


STEPS: list[Callable[[Quickstart], None]] = _all_steps()


def run(qs: Quickstart, steps: list[Callable[[Quickstart], None]] | None = None) -> Quickstart:
    """Run the quickstart steps in order on ``qs``; return it with every step's results."""
    for step in steps or STEPS:
        step(qs)
    return qs


def register(app: typer.Typer) -> None:
    """Add the ``quickstart`` command to ``app``."""

    @app.command("quickstart")
    def quickstart(
        name: str = typer.Option("quickstart", "--name", help="Name of the model trained."),
        epochs: int = typer.Option(5, "--epochs", help="Training epochs (fewer is faster)."),
        as_json: bool = typer.Option(False, "--json", help="Print every step's figures as "
                                     "JSON instead of the walk-through."),
    ) -> None:
        """Train, explore and evaluate a fastText model on the WordNet glosses shipped with
        embedops (about a minute on two cores; nothing is downloaded)."""
        with engine() as api:
            qs = run(Quickstart(name=name, epochs=epochs, api=api, silent=as_json))
        if as_json:
            print_json({"model": qs.model_ref, **qs.results})
            return
        typer.echo("done: see 'embedops models list' and 'embedops models show <ref>'")
