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
    model = Word2Vec(sentences, vector_size=32, min_count=3, epochs=10, workers=1, seed=seed)
    return StaticVectors.from_gensim(model.wv)


def test_canary_planted_often_is_flagged_and_one_never_planted_is_not() -> None:
    report = audit_static(_table(20), [PLANTED, NEVER], candidates=500)
    planted, never = report.exposures
    assert planted.secret_in_vocab and planted.flagged and planted.exposure_bits >= 3.0
    assert not never.secret_in_vocab and not never.flagged and never.exposure_bits == 0.0
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
