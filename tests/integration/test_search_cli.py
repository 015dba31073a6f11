"""``embedops index ...`` and ``embedops search`` end to end: a real word2vec model trained on
gensim's Lee corpus, a real catalog, real snapshots; the CLI run in a subprocess once and
through its entry point otherwise."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from embedops.api import Embedops
from embedops.cli.index_cmd import parse_params
from embedops.cli.main import main
from embedops.config import Workspace
from embedops.errors import InvalidInput
from embedops.models.registry import Registry
from embedops.models.static import StaticVectors, publish_static
from embedops.text.tokenize import TokenizerSpec


@pytest.fixture(scope="module")
def lines(lee_corpus: Path) -> list[str]:
    return [x.strip() for x in lee_corpus.read_text(errors="replace").splitlines() if x.strip()]


@pytest.fixture
def ws(workspace: Workspace, lines: list[str]) -> Workspace:
    from gensim.models import Word2Vec

    spec = TokenizerSpec()
    model = Word2Vec([spec.tokenize(x) for x in lines], vector_size=24, min_count=2, epochs=3,
                     workers=1, seed=2)
    publish_static(Registry(workspace), "w2v", StaticVectors.from_gensim(model.wv),
                   kind="word2vec", spec=spec)
    with Embedops(workspace) as api:
        api.collections.create("lee", model="w2v")
        api.upsert_items("lee", [{"id": f"d{i}", "text": t, "metadata": {"n": i}}
                                 for i, t in enumerate(lines)])
    return workspace


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--quiet", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_build_status_search_verify_rollback(ws, lines, capsys) -> None:
    code, out, _ = _run(capsys, "index", "build", "lee", "--backend", "hnsw", "-p", "M=16",
                        "--json")
    first = json.loads(out)
    assert code == 0 and first["backend"] == "hnsw" and first["count"] == 300
    code, out, _ = _run(capsys, "search", "lee", lines[9], "-k", "3", "--json")
    body = json.loads(out)
    assert code == 0 and body["hits"][0]["id"] == "d9" and body["model_version"] == "w2v@1"
    code, out, _ = _run(capsys, "search", "lee", lines[9], "--mode", "two-stage", "-f", "n>=9",
                        "-f", "n<=9", "--json")
    assert [h["id"] for h in json.loads(out)["hits"]] == ["d9"]
    code, out, _ = _run(capsys, "search", "lee", "bushfires", "--mode", "hybrid")
    assert code == 0 and "hybrid" in out
    assert _run(capsys, "index", "build", "lee")[0] == 0
    code, out, _ = _run(capsys, "index", "status", "lee")
    assert code == 0 and "not in snapshot: 0 items" in out
    code, out, _ = _run(capsys, "index", "verify", "lee")
    assert code == 0 and out.count(": ok") == 3 and "catalog: ok" in out  # two snapshots
    code, out, _ = _run(capsys, "index", "rollback", "lee")
    assert code == 0 and first["name"] in out


def test_errors_exit_1_with_a_message(ws, capsys) -> None:
    code, _, err = _run(capsys, "search", "lee", "fire", "-k", "0")
    assert code == 1 and "k must be at least 1" in err
    code, _, err = _run(capsys, "search", "nope", "fire")
    assert code == 1 and "nope" in err
    code, _, err = _run(capsys, "search", "lee", "fire", "--mode", "fuzzy")
    assert code == 1 and "unknown search mode" in err
    code, _, err = _run(capsys, "index", "build", "lee", "--backend", "annoy")
    assert code == 1 and "annoy" in err
    code, _, err = _run(capsys, "index", "build", "lee", "-p", "nonsense")
    assert code == 1 and "--param" in err
    code, _, err = _run(capsys, "search", "lee", "fire", "-f", "just-a-word")
    assert code == 1 and "filter" in err


def test_damaged_snapshot_makes_verify_fail(ws, capsys) -> None:
    _, out, _ = _run(capsys, "index", "build", "lee", "--json")
    for path in Path(json.loads(out)["path"]).rglob("keys.json"):
        path.write_text("[]")
    code, _, err = _run(capsys, "index", "verify", "lee")
    assert code == 1 and "damaged" in err


def test_search_in_a_subprocess(ws, lines) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "embedops.cli.main", "--quiet", "search", "lee", lines[4],
         "--mode", "lexical", "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["hits"][0]["id"] == "d4"


def test_parse_params() -> None:
    assert parse_params(["M=32", "name=x", "f=0.5"]) == {"M": 32, "name": "x", "f": 0.5}
    with pytest.raises(InvalidInput):
        parse_params(["=3"])


def test_search_params_tune_the_index_per_query(ws, lines, capsys) -> None:
    assert _run(capsys, "index", "build", "lee", "--backend", "ivf", "-p", "nlist=4")[0] == 0
    code, out, _ = _run(capsys, "search", "lee", lines[9], "-k", "3", "--param", "nprobe=4",
                        "--json")
    assert code == 0 and json.loads(out)["hits"][0]["id"] == "d9"
    code, _, err = _run(capsys, "search", "lee", "fire", "--param", "ef_search=64")
    assert code == 1 and "not a search parameter of the ivf index" in err and "nprobe" in err
    code, _, err = _run(capsys, "search", "lee", "fire", "--param", "nprobe=0")
    assert code == 1 and "nprobe must be an integer in 1.." in err
    code, _, err = _run(capsys, "search", "lee", "fire", "--mode", "lexical", "-p", "nprobe=2")
    assert code == 1 and "lexical search has none" in err
    with Embedops(ws) as api:  # the facade takes them too, in every dense-based mode
        for mode in ("dense", "hybrid", "two_stage"):
            hits = api.search("lee", lines[9], k=3, mode=mode, search_params={"nprobe": 4}).hits
            assert hits[0].id == "d9", mode
        with pytest.raises(InvalidInput, match="mapping"):
            api.search("lee", lines[9], search_params=[("nprobe", 4)])  # type: ignore[arg-type]
