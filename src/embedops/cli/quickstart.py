"""``embedops quickstart``: the demo job, on data and a model that ship with embedops.

It imports the bundled all-MiniLM-L6-v2 (ONNX, int8), distills it into a static word-vector
model over the 117,659 WordNet glosses (model2vec-style: one table lookup per word, no
transformer at query time), shows nearest neighbours and scores the static model on WS353,
SimLex-999 and the Google analogies. ``quickstart_search`` then stores the glosses, indexes and
searches them, gates them with a golden set, and rolls MiniLM out over the static model the
way a production model change goes. Each stage is a small step function taking the shared
``Quickstart`` state, listed in ``STEPS``.
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
TEACHER = "minilm"
#: Corpus words the static model keeps besides MiniLM's own whole-word entries.
DISTILL_WORDS = 20_000


@dataclass
class Quickstart:
    """State shared by the steps: the engine, the models, and what steps produce."""

    api: Embedops
    name: str = "glosses-static"
    model_ref: str | None = None
    teacher_ref: str | None = None
    table: Any = None
    results: dict[str, Any] = field(default_factory=dict)
    silent: bool = False

    def say(self, text: str = "") -> None:
        """Print a line of the demo's output (nothing when ``silent``, e.g. for ``--json``)."""
        if not self.silent:
            typer.echo(text)


def step_import(qs: Quickstart) -> None:
    """Import the all-MiniLM-L6-v2 model that ships with embedops (offline)."""
    import time

    qs.say("1. import all-MiniLM-L6-v2, shipped with embedops (ONNX int8 export, fingerprinted)")
    started = time.perf_counter()
    teacher = _latest(qs, TEACHER) or qs.api.models.import_transformer(TEACHER).ref
    mv = qs.api.models.resolve(teacher)
    qs.teacher_ref = mv.ref
    qs.results["teacher"] = {"ref": mv.ref, "dim": mv.dim,
                             "tokenizer_fingerprint": mv.tokenizer_fingerprint}
    qs.say(f"   {mv.ref}: dim {mv.dim}, tokenizer {mv.tokenizer_fingerprint}, "
           f"{time.perf_counter() - started:.1f} s")


def _latest(qs: Quickstart, name: str) -> str | None:
    """The newest version of model ``name`` in the workspace (a re-run reuses it), or None:
    the engine's own resolution of a bare name."""
    from embedops.errors import ModelNotFound

    try:
        return qs.api.models.resolve(name).ref
    except ModelNotFound:
        return None


def step_distill(qs: Quickstart) -> None:
    """Distill MiniLM into a static model over the shipped glosses and publish it."""
    import time

    from embedops.engine.options import DistillConfig

    assert qs.teacher_ref is not None
    qs.say(f"2. distill it into a static model over the WordNet glosses ('{qs.name}')")
    started = time.perf_counter()
    earlier = _latest(qs, qs.name)
    if earlier is not None:  # a re-run keeps the model its collection already serves
        mv = qs.api.models.resolve(earlier)
    else:
        with tempfile.TemporaryDirectory(prefix="quickstart.",
                                         dir=qs.api.workspace.staging_dir) as tmp:
            corpus = write_gloss_corpus(Path(tmp) / "glosses.txt")
            mv = qs.api.models.distill(
                qs.teacher_ref, qs.name, DistillConfig(dim=256, max_corpus_words=DISTILL_WORDS),
                corpus)
    qs.model_ref = mv.ref
    qs.table = qs.api.models.table(mv.ref)
    qs.results["distill"] = {"ref": mv.ref, "words": len(qs.table), "dim": qs.table.dim,
                             "seconds": round(time.perf_counter() - started, 1)}
    qs.say(f"   {mv.ref}: {len(qs.table):,} words, dim {qs.table.dim}, "
           f"{time.perf_counter() - started:.1f} s (lineage: distilled from {qs.teacher_ref})")


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
    qs.say("3. nearest neighbours in the static model")
    for word in NEIGHBOUR_WORDS:
        if word in qs.table:
            near = ", ".join(w for w, _ in qs.table.most_similar(word, k=5))
            qs.say(f"   {word:<10} {near}")


def step_evaluate(qs: Quickstart) -> None:
    """Score the model on WS353, SimLex-999 and the Google analogies (stored in its manifest)."""
    qs.say("4. intrinsic evaluation of the static model (recorded in its manifest)")
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

    return [step_import, step_distill, step_neighbours, step_evaluate,
            *quickstart_search.STEPS]


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
        name: str = typer.Option("glosses-static", "--name",
                                 help="Name of the static model distilled from MiniLM."),
        as_json: bool = typer.Option(False, "--json", help="Print every step's figures as "
                                     "JSON instead of the walk-through."),
    ) -> None:
        """Import MiniLM, distill it into a static model, then store, index, search and gate the
        WordNet glosses shipped with embedops and roll MiniLM out over the static model (about
        two minutes on two cores; nothing is downloaded)."""
        with engine() as api:
            qs = run(Quickstart(name=name, api=api, silent=as_json))
        if as_json:
            print_json({"model": qs.model_ref, **qs.results})
            return
        typer.echo("done: see 'embedops models list' and 'embedops models show <ref>'")
