"""The quickstart's steps, on a small fastText model trained on the Lee corpus (the full
quickstart trains on all WordNet glosses, which is `make demo`'s job, not the tests')."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedops.cli.quickstart import (
    NEIGHBOUR_WORDS,
    Quickstart,
    run,
    step_evaluate,
    step_neighbours,
    step_oov,
    write_gloss_corpus,
)
from embedops.engine import Embedops
from embedops.models.registry import Registry
from embedops.models.static import StaticVectors
from embedops.train import TrainConfig, train_static


def test_gloss_corpus_puts_headwords_before_their_gloss(tmp_path: Path) -> None:
    path = write_gloss_corpus(tmp_path / "g.txt")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 117_659
    assert lines[1] == "physical entity, an entity that has physical existence"


def test_steps_show_neighbours_oov_vectors_and_scores(
    registry: Registry, lee_corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = TrainConfig(model="fasttext", epochs=2, dim=32, bucket=20_000, workers=1)
    mv = train_static(lee_corpus, "qs", config, registry).version
    with Embedops(registry.workspace) as api:
        qs = Quickstart(api=api, model_ref=mv.ref, table=StaticVectors.read(mv))
        run(qs, [step_neighbours, step_oov, step_evaluate])
    out = capsys.readouterr().out
    shown = [w for w in NEIGHBOUR_WORDS if w in qs.table]
    assert shown and all(f"   {w} " in out for w in shown)
    assert "musicianship (not in vocabulary):" in out
    assert set(qs.results) == {"wordsim353", "simlex999", "google-analogy"}
    assert "wordsim353" in registry.get(mv.ref).manifest["eval"]
