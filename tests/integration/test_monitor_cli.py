"""``embedops golden …``, ``drift`` and ``compare`` end to end on a real word2vec model trained
on gensim's Lee corpus, a real catalog and real snapshots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embedops.api import Embedops
from embedops.cli.main import main
from embedops.config import HOME_ENV, Workspace
from embedops.models.registry import Registry
from embedops.models.static import StaticVectors, publish_static
from embedops.monitor.compare import apply_alignment
from embedops.text.tokenize import TokenizerSpec


@pytest.fixture(scope="module")
def lines(lee_corpus: Path) -> list[str]:
    return [x.strip() for x in lee_corpus.read_text(errors="replace").splitlines() if x.strip()]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, lines: list[str]) -> Path:
    """Two word2vec versions, collection 'lee' (active w2v@1, vectors of w2v@2 too), ivfpq."""
    from gensim.models import Word2Vec

    ws = Workspace(tmp_path_factory.mktemp("monitor") / "ws").ensure()
    spec = TokenizerSpec()
    sentences = [spec.tokenize(x) for x in lines]
    for seed in (2, 3):
        model = Word2Vec(sentences, vector_size=24, min_count=2, epochs=5, workers=1, seed=seed)
        publish_static(Registry(ws), "w2v", StaticVectors.from_gensim(model.wv),
                       kind="word2vec", spec=spec)
    with Embedops(ws) as api:
        api.collections.create("lee", model="w2v@1")
        api.upsert_items("lee", [{"id": f"d{i}", "text": t} for i, t in enumerate(lines)])
        api.backfill("lee", "w2v@2")
        api.build_index("lee", "ivfpq", {"nprobe": 1}, quiet=True)
    return ws.home


@pytest.fixture
def run(home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    monkeypatch.setenv(HOME_ENV, str(home))

    def call(*args: str) -> tuple[int, str, str]:
        code = main(["--quiet", *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return call


def _golden_file(tmp_path: Path, lines: list[str], n: int = 40) -> Path:
    path = tmp_path / "golden.jsonl"
    rows = [{"query": " ".join(lines[i].split()[:12]), "relevant": [f"d{i}"]}
            for i in range(0, 3 * n, 3)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_golden_lifecycle_and_gate(run, tmp_path, lines) -> None:
    assert run("golden", "create", "lee-first")[0] == 0
    assert run("golden", "create", "lee-first")[0] == 1  # already exists
    code, out, _ = run("golden", "import", "lee-first", str(_golden_file(tmp_path, lines)))
    assert code == 0 and "imported 40" in out
    code, out, _ = run("golden", "add", "lee-first", lines[1][:60], "-r", "d1",
                       "--grade", "d4=2")
    assert code == 0 and "41 queries" in out
    code, out, _ = run("golden", "list", "--json")
    assert json.loads(out)[0]["n_queries"] == 41
    code, out, _ = run("golden", "run", "lee", "lee-first", "-k", "1", "-k", "10", "--json")
    body = json.loads(out)
    assert code == 0 and body["model_version"] == "w2v@1" and body["snapshot"]
    assert 0.1 < body["scores"]["recall@10"] <= 1 and body["scores"]["mrr@10"] > 0
    code, out, _ = run("golden", "run", "lee", "lee-first", "--mode", "lexical")
    assert code == 0 and "recall@10" in out
    code, out, _ = run("golden", "run", "lee", "lee-first", "--mode", "two-stage", "--json")
    assert code == 0 and json.loads(out)["params"]["mode"] == "two_stage"
    r1, r10 = body["scores"]["recall@1"], body["scores"]["recall@10"]
    assert r1 < r10
    middle = f"{(r1 + r10) / 2:.4f}"
    # A per-k gate holds recall@10 only; a bare number (the older spelling) gates every k.
    code, _, err = run("golden", "run", "lee", "lee-first", "-k", "1", "-k", "10",
                       "--min-recall", f"10={middle}")
    assert code == 0, err
    code, _, err = run("golden", "run", "lee", "lee-first", "-k", "1", "-k", "10",
                       "--min-recall", middle)
    assert code == 1 and "quality gate failed: recall@1 =" in err and "recall@10" not in err
    code, _, err = run("golden", "run", "lee", "lee-first", "--min-recall", "5=0.1")
    assert code == 1 and "computes only k = 10" in err and "-k 5" in err
    assert "0..1" in run("golden", "run", "lee", "lee-first", "--min-recall", "1.01")[2]
    assert "K=MIN" in run("golden", "run", "lee", "lee-first", "--min-recall", "ten=1")[2]
    code, out, _ = run("golden", "history", "lee-first", "--json")
    history = json.loads(out)
    # Newest first; the refused runs (bad gates) never searched, so were not stored.
    assert [h["params"]["mode"] for h in history] == ["dense", "dense", "two_stage", "lexical",
                                                      "dense"]


def test_golden_bad_inputs(run, tmp_path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "a", "relevant": ["x"]}\n{"query": "b", "relevant": 5}\n')
    assert run("golden", "create", "bad")[0] == 0
    code, _, err = run("golden", "import", "bad", str(bad))
    assert code == 1 and "line 2" in err
    bad.write_text('{"query": "a", "relevant": ["x"]}\nnot json\n')
    assert "line 2: not valid JSON" in run("golden", "import", "bad", str(bad))[2]
    assert "no golden set named 'nope'" in run("golden", "run", "lee", "nope")[2]
    assert "has no queries" in run("golden", "run", "lee", "bad")[2]
    assert "ID=GRADE" in run("golden", "add", "bad", "q", "--grade", "d1")[2]
    assert "invalid golden set name" in run("golden", "create", "../x")[2]
    assert "at least one relevant" in run("golden", "add", "bad", "q")[2]


def test_layers_table(run, tmp_path, lines) -> None:
    run("golden", "create", "layers")
    run("golden", "import", "layers", str(_golden_file(tmp_path, lines, 30)))
    code, out, _ = run("golden", "layers", "lee", "layers", "--reference-version", "w2v@2",
                       "--json")
    report = json.loads(out)
    assert code == 0 and report["index_kind"] == "ivfpq"
    assert set(report["stages"]) == {"reference exact", "exact", "quantized exhaustive",
                                     "served"}
    assert set(report["losses"]) == {"model", "quantization", "ann"}
    stages = report["stages"]
    assert report["losses"]["ann"] == pytest.approx(
        stages["quantized exhaustive"] - stages["served"], abs=1e-6)
    code, out, _ = run("golden", "layers", "lee", "layers")
    assert code == 0 and "quantization" in out and "ann" in out


def test_compare_and_alignment(run, tmp_path, lines) -> None:
    probe = tmp_path / "probe.txt"
    probe.write_text("\n".join(lines[:120]))
    map_path = tmp_path / "w2v1-to-2.safetensors"
    code, out, _ = run("compare", "w2v@1", "w2v@2", "--probe", str(probe), "--save-map",
                       str(map_path), "--json")
    body = json.loads(out)
    assert code == 0 and body["n_probe"] == 120
    assert 0 < body["knn_overlap"] < 1 and body["aligned_knn_overlap"] >= body["knn_overlap"]
    run("golden", "create", "cmp")
    run("golden", "import", "cmp", str(_golden_file(tmp_path, lines, 20)))
    code, out, _ = run("compare", "w2v@1", "w2v@2", "--collection", "lee", "--sample", "80",
                       "--golden", "cmp", "--json")
    golden = json.loads(out)["golden"]
    assert golden["delta"]["recall@10"] == pytest.approx(
        golden["w2v@2"]["recall@10"] - golden["w2v@1"]["recall@10"])
    old = np.random.default_rng(0).normal(size=(3, 24)).astype(np.float32)
    mapped = apply_alignment(map_path, old, "w2v@1")
    assert mapped.shape == (3, 24) and np.allclose(np.linalg.norm(mapped, axis=1), 1, atol=1e-5)
    assert "two different versions" in run("compare", "w2v@1", "w2v@1", "--probe", str(probe))[2]


def test_drift_windows_and_files(run, tmp_path, lines) -> None:
    html = tmp_path / "drift.html"
    code, out, _ = run("drift", "lee", "--reference-until", "1d", "--current-since", "1d")
    assert code == 1  # the reference window (older than a day) is empty
    ref, cur = tmp_path / "ref.txt", tmp_path / "cur.txt"
    ref.write_text("\n".join(lines[:150:2]))
    cur.write_text("\n".join(lines[1:150:2]))
    code, out, _ = run("drift", "lee", "--reference", str(ref), "--current", str(cur),
                       "--html", str(html))
    assert code == 0 and "no drift" in out
    page = html.read_text()
    assert page.count("<svg") == 5 and "PCA scatter" in page
    code, out, _ = run("drift", "lee", "--reference-since", "0", "--current-since", "0", "--json")
    assert code == 0 and json.loads(out)["n_reference"] == len(lines)
    assert "not given" in run("drift", "lee", "--reference", str(ref))[2]
    assert "cannot read the time" in run("drift", "lee", "--reference-since", "yesterday",
                                         "--current-since", "0")[2]


def test_drift_by_rows_and_ids_on_a_fresh_collection(run, tmp_path, lines) -> None:
    # Every item was ingested at once, so time windows cannot split it: rows and ids can.
    code, out, err = run("drift", "lee", "--reference-rows", "0:150", "--current-rows", "150:",
                         "--json")
    body = json.loads(out)
    assert code == 0, err
    assert body["n_reference"] == 150 and body["n_current"] == len(lines) - 150
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(f"d{i}" for i in range(0, 60)) + "\n")
    code, out, err = run("drift", "lee", "--reference-ids", str(ids), "--current-rows", "-60:",
                         "--json")
    assert code == 0 and json.loads(out)["n_reference"] == 60, err
    code, _, err = run("drift", "lee", "--reference-rows", "0:1", "--current-rows", "1:")
    assert code == 1 and "holds 1 item(s)" in err and "at least 2" in err
    assert "cannot read the row range" in run("drift", "lee", "--reference-rows", "a:b",
                                              "--current-rows", "1:")[2]
    code, _, err = run("drift", "lee", "--reference-rows", "0:9", "--reference-since", "0",
                       "--current-rows", "9:")
    assert code == 1 and "given twice" in err


def test_golden_import_creates_the_set(run, tmp_path, lines) -> None:
    code, out, err = run("golden", "import", "fresh", str(_golden_file(tmp_path, lines, 5)),
                         "--json")
    assert code == 0, err
    assert json.loads(out) == {"set": "fresh", "created": True, "imported": 5, "queries": 5}
    code, out, _ = run("golden", "import", "fresh", str(_golden_file(tmp_path, lines, 5)))
    assert code == 0 and "created" not in out and "(10 in all)" in out
