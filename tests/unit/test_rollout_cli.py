"""``embedops rollout ...`` through the CLI entry point on a real workspace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from embedops.api import Embedops
from embedops.cli.main import main
from embedops.config import Workspace
from embedops.engine import audit
from embedops.models.registry import Registry
from embedops.models.static import StaticVectors, publish_static
from embedops.text.tokenize import TokenizerSpec


@pytest.fixture
def ws(workspace: Workspace, lee_corpus: Path) -> Workspace:
    from gensim.models import Word2Vec

    spec = TokenizerSpec()
    lines = [x.strip() for x in lee_corpus.read_text(errors="replace").splitlines() if x.strip()]
    sentences = [spec.tokenize(x) for x in lines]
    for dim in (20, 12):
        model = Word2Vec(sentences, vector_size=dim, min_count=2, epochs=2, workers=1, seed=dim)
        publish_static(Registry(workspace), "w2v", StaticVectors.from_gensim(model.wv),
                       kind="word2vec", spec=spec)
    with Embedops(workspace) as api:
        api.collections.create("lee", model="w2v@1")
        api.upsert_items("lee", [{"id": f"d{i}", "text": t} for i, t in enumerate(lines[:80])])
    return workspace


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--quiet", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_start_status_promote_rollback(ws: Workspace, capsys) -> None:
    code, out, _ = _run(capsys, "rollout", "start", "lee", "--model", "w2v@2", "--canary",
                        "0.2", "--rate", "5000/s", "--json")
    state = json.loads(out)
    assert code == 0 and state["phase"] == "canary" and state["backfill"]["done"] == 80
    code, out, _ = _run(capsys, "rollout", "status", "lee")
    assert code == 0 and "canary" in out and "gate traffic: pending" in out
    code, _, err = _run(capsys, "rollout", "promote", "lee")
    assert code == 1 and "does not pass its gates" in err and "--force" in err
    code, out, _ = _run(capsys, "rollout", "promote", "lee", "--force")
    assert code == 0 and "promoted" in out
    code, out, _ = _run(capsys, "rollout", "rollback", "lee", "--reason", "drill")
    assert code == 0 and "rolled_back — drill" in out
    actions = [e["action"] for e in audit.read(ws)]
    assert actions == ["rollout.start", "rollout.serving", "rollout.promote", "rollout.rollback"]
    assert audit.read(ws)[2]["forced"] is True


def test_bad_input_exits_1_with_a_message(ws: Workspace, capsys) -> None:
    code, _, err = _run(capsys, "rollout", "start", "lee", "--model", "w2v@2", "--rate", "fast")
    assert code == 1 and "cannot read the rate" in err
    code, _, err = _run(capsys, "rollout", "status", "lee")
    assert code == 1 and "has no rollout" in err
    code, _, err = _run(capsys, "rollout", "start", "lee", "--model", "w2v@2", "--canary", "2")
    assert code == 1 and "share" in err
    code, _, err = _run(capsys, "rollout", "start", "nope", "--model", "w2v@2")
    assert code == 1 and "nope" in err


def test_start_checks_golden_set_and_kind_before_any_work(ws: Workspace, capsys) -> None:
    code, _, err = _run(capsys, "rollout", "start", "lee", "--model", "w2v@2", "--golden", "nope")
    assert code == 1 and "no golden set named 'nope'" in err
    code, _, err = _run(capsys, "golden", "create", "empty")
    code, _, err = _run(capsys, "rollout", "start", "lee", "--model", "w2v@2", "--golden",
                        "empty")
    assert code == 1 and "has no queries" in err and "golden import empty" in err
    code, _, err = _run(capsys, "rollout", "start", "lee", "--model", "w2v@2", "--kind", "nsw")
    assert code == 1 and "unknown index kind 'nsw'" in err
    # Nothing was left behind: no rollout, no candidate, no candidate vectors backfilled.
    assert "has no rollout" in _run(capsys, "rollout", "status", "lee")[2]
    with Embedops(ws) as api:
        assert api.collections.info("lee").candidate_version is None
        assert len(api.missing_vectors("lee", "w2v@2")) == 80
    assert audit.read(ws) == []
