"""The quickstart's steps, on small static models trained on the Lee corpus (the full
quickstart imports MiniLM and distills it over all WordNet glosses, which is `make demo`'s job,
not the tests')."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedops.cli import quickstart_search
from embedops.cli.quickstart import (
    NEIGHBOUR_WORDS,
    Quickstart,
    run,
    step_evaluate,
    step_neighbours,
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


def test_steps_show_neighbours_and_scores(
    registry: Registry, lee_corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = TrainConfig(model="fasttext", epochs=2, dim=32, bucket=20_000, workers=1)
    mv = train_static(lee_corpus, "qs", config, registry).version
    with Embedops(registry.workspace) as api:
        qs = Quickstart(api=api, model_ref=mv.ref, table=StaticVectors.read(mv))
        run(qs, [step_neighbours, step_evaluate])
    out = capsys.readouterr().out
    shown = [w for w in NEIGHBOUR_WORDS if w in qs.table]
    assert shown and all(f"   {w} " in out for w in shown)
    assert set(qs.results) == {"wordsim353", "simlex999", "google-analogy"}
    assert "wordsim353" in registry.get(mv.ref).manifest["eval"]


def test_search_steps_gate_and_promote_the_rollout(
    registry: Registry, lee_corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    small = TrainConfig(model="word2vec", epochs=1, dim=16, workers=1)
    first = train_static(lee_corpus, "first", small, registry).version
    second = train_static(lee_corpus, "second", small, registry).version
    with Embedops(registry.workspace) as api:
        qs = Quickstart(api=api, model_ref=first.ref, teacher_ref=second.ref)
        run(qs, quickstart_search.STEPS)
        out = capsys.readouterr().out
        # Stored, indexed, searched in every mode, scored by the golden set.
        assert api.count(quickstart_search.COLLECTION) == 29_415
        pairs = qs.results["golden_pairs"]
        assert len(pairs) == quickstart_search.GOLDEN_SIZE
        assert all(", " in query for query, _ in pairs)  # synonyms, two or more words
        assert {"golden_dense", "golden_lexical", "golden_hybrid"} <= set(qs.results)
        # The rollout: both versions scored, traffic routed to both, gates passed, promoted.
        rollout = qs.results["rollout"]
        assert set(rollout["golden_recall@10"]) == {first.ref, second.ref}
        assert set(rollout["routed"]) == {first.ref, second.ref}
        assert sum(rollout["routed"].values()) == 2 * len(pairs)
        assert rollout["gates_passed"] is True
        assert api.collections.info(quickstart_search.COLLECTION).model_version == second.ref
        assert f"{second.ref} now serves" in out
        # A re-run finds the promoted model and does not start another rollout.
        quickstart_search.step_rollout(qs)
        assert "already serves" in capsys.readouterr().out
