"""Privacy audit of static models: canary exposure, PII in the vocabulary, report and CLI gate.

A reduced corpus (gensim's Lee corpus, ~300 lines, not the 13M subset), so it runs in seconds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from embedops.cli.main import main
from embedops.config import Workspace
from embedops.errors import InvalidInput
from embedops.evaluate.privacy import Canary, audit_static, plant_canaries, scan_vocabulary

PLANTED = Canary.parse("my vault code is=zqvbkm")
NEVER = Canary.parse("my locker code is=wexpoj")
EMAIL = "jane.roe@example.org"


def _table(times: int, seed: int = 1) -> Any:
    from gensim.models import Word2Vec
    from gensim.test.utils import datapath

    from embedops.models.static import StaticVectors
    from embedops.text.tokenize import TokenizerSpec

    lines = Path(datapath("lee_background.cor")).read_text(encoding="utf-8").splitlines()
    spec = TokenizerSpec()
    sentences = [spec.tokenize(line) for line in plant_canaries(lines, [(PLANTED, times)], 1)]
    # as if trained with --no-redact and a tokenizer that keeps e-mail addresses whole
    sentences += [["mail", "me", "at", EMAIL, "today"]] * 3
    # CBOW (the train default) at embedops' CBOW learning rate, input vectors only (what an
    # imported gensim model has). At gensim's own 0.025 on these 60k words CBOW has not
    # learnt the secret: its own likelihood out(secret) . mean(in(context)) ranks it ~165 of
    # 500, and the audit does not flag it either (docs/benchmarks/privacy.md)
    model = Word2Vec(sentences, vector_size=32, min_count=3, epochs=10, workers=1, seed=seed,
                     sg=0, alpha=0.075)
    return StaticVectors.from_gensim(model.wv)


def test_canary_planted_often_is_flagged_and_one_never_planted_is_not() -> None:
    controls = [Canary(PLANTED.context, w) for w in ("police", "fire", "water", "people")]
    report = audit_static(_table(20), [PLANTED, NEVER, *controls], candidates=500)
    planted, never, *others = report.exposures
    assert planted.secret_in_vocab and planted.flagged and planted.exposure_bits >= 3.0
    assert not never.secret_in_vocab and not never.flagged and never.exposure_bits == 0.0
    # real words never written after the context are ranked, and not all flagged
    assert all(e.secret_in_vocab for e in others) and sum(e.flagged for e in others) <= 2
    assert [f.entry for f in report.pii] == [EMAIL] and report.pii[0].kinds == ("email",)
    assert not report.passed
    assert "FLAGGED" in report.to_text() and "<table>" in report.to_html()
    assert json.dumps(report.to_dict())


def test_pii_scan_and_canary_parsing() -> None:
    found = scan_vocabulary(["hello", "call_+1_555_123_4567", "bob@example.com", "2024"])
    assert [f.entry for f in found] == ["call_+1_555_123_4567", "bob@example.com"]
    with pytest.raises(InvalidInput):
        Canary.parse("no secret here")
    assert plant_canaries(["a", "b"], [(PLANTED, 3)]).count(PLANTED.sentence) == 3


def test_cli_gate_exits_1_on_a_flagged_model(workspace: Workspace, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from embedops.models.registry import Registry
    from embedops.models.static import publish_static
    from embedops.text.tokenize import TokenizerSpec

    publish_static(Registry(workspace), "leaky", _table(20), kind="word2vec",
                   spec=TokenizerSpec())
    out = tmp_path / "audit.html"
    code = main(["audit-privacy", "leaky", "--canary", "my vault code is=zqvbkm",
                 "--canary", "my locker code is=wexpoj", "--html", str(out), "--json"])
    assert code == 1
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "leaky@1" and not report["passed"]
    assert out.read_text().startswith("<!doctype html>")


def _halves() -> tuple[list[list[str]], list[list[str]]]:
    """Lee's documents split in two: even lines (trained on) and odd lines (held out)."""
    from gensim.test.utils import datapath

    from embedops.text.tokenize import TokenizerSpec

    lines = Path(datapath("lee_background.cor")).read_text(encoding="utf-8").splitlines()
    spec = TokenizerSpec()
    tokens = [spec.tokenize(line) for line in lines]
    return tokens[::2], tokens[1::2]


def _overfit(sentences: list[list[str]]) -> Any:
    from gensim.models import Word2Vec

    from embedops.models.static import StaticVectors

    model = Word2Vec(sentences, vector_size=48, min_count=2, epochs=40, window=5, sg=1,
                     workers=1, seed=1)
    return StaticVectors.from_gensim(model.wv)


def test_membership_inference_tells_trained_from_held_out_sentences() -> None:
    from embedops.evaluate.privacy import membership_inference

    members, held_out = _halves()
    table = _overfit(members)
    estimate = membership_inference(table, members, held_out)
    assert estimate.auc > estimate.max_auc and estimate.flagged, estimate
    # the baseline: two sets of unseen sentences are not told apart
    chance = membership_inference(table, held_out[::2], held_out[1::2])
    assert abs(chance.auc - 0.5) < 0.12 and not chance.flagged, chance
    report = audit_static(table, members=members, held_out=held_out)
    assert not report.passed and report.membership == estimate
    assert "membership inference: AUC" in report.to_text()
    assert "Membership inference" in report.to_html()
    assert json.loads(json.dumps(report.to_dict()))["membership"]["baseline"] == 0.5
    with pytest.raises(InvalidInput, match="held-out"):
        audit_static(table, members=members)
    with pytest.raises(InvalidInput, match="vocabulary"):
        membership_inference(table, members, [["zzzqx", "qqqzx"]])


def test_roc_auc_counts_ties_half() -> None:
    import numpy as np

    from embedops.evaluate.privacy import roc_auc

    assert roc_auc(np.array([3.0, 2.0]), np.array([1.0, 2.0])) == pytest.approx(3.5 / 4)
    assert roc_auc(np.array([0.0]), np.array([1.0])) == 0.0


def test_cli_membership_gate(workspace: Workspace, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    from embedops.models.registry import Registry
    from embedops.models.static import publish_static
    from embedops.text.tokenize import TokenizerSpec

    members, held_out = _halves()
    publish_static(Registry(workspace), "overfit", _overfit(members), kind="word2vec",
                   spec=TokenizerSpec())
    (tmp_path / "in.txt").write_text("\n".join(" ".join(s) for s in members))
    (tmp_path / "out.txt").write_text("\n".join(" ".join(s) for s in held_out))
    args = ["audit-privacy", "overfit", "--members", str(tmp_path / "in.txt"),
            "--held-out", str(tmp_path / "out.txt"), "--json"]
    assert main(args) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["membership"]["flagged"] and report["membership"]["auc"] > 0.6
    assert main([*args, "--max-auc", "1.0"]) == 0  # a gate that allows any AUC passes
    capsys.readouterr()
    assert main(args[:4] + ["--json"]) == 1  # members without held-out sentences
    assert "held-out" in capsys.readouterr().err
