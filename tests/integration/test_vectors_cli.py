"""``embedops import|export|similar|analogy|eval`` end to end, errors included, and a real
SIGKILL in the middle of an import that must leave no model version behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from embedops.cli.main import main
from embedops.config import Workspace
from embedops.models.formats import export_vectors
from embedops.models.registry import Registry
from embedops.models.static import StaticVectors


@pytest.fixture(scope="module")
def vec_file(tmp_path_factory: pytest.TempPathFactory, lee_corpus: Path) -> Path:
    """A word2vec binary file of a small model trained on the Lee corpus."""
    from gensim.models import Word2Vec

    sentences = [line.lower().split() for line in lee_corpus.read_text().splitlines()]
    kv = Word2Vec(sentences, vector_size=16, min_count=3, epochs=2, seed=5, workers=1).wv
    path = tmp_path_factory.mktemp("vec") / "lee.bin"
    export_vectors(StaticVectors.from_gensim(kv), path, "word2vec-binary", quiet=True)
    return path


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--quiet", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_import_query_export_eval(
    workspace: Workspace, vec_file: Path, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = _run(
        capsys, "import", str(vec_file), "--format", "word2vec-binary", "--name", "lee"
    )
    assert code == 0 and "imported lee@1" in out
    mv = Registry(workspace).get("lee@1", verify=True)
    assert mv.kind == "word2vec" and mv.manifest["tokenizer"]["lowercase"] is True

    code, out, _ = _run(capsys, "similar", "lee", "police", "-k", "3", "--json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 3 and "police" not in [r["word"] for r in rows]
    code, out, _ = _run(capsys, "similar", "lee@1", "police")
    assert code == 0 and "nearest to 'police'" in out

    code, out, _ = _run(
        capsys, "analogy", "lee", "man", "he", "woman", "-k", "2", "--json", "--method", "3cosmul"
    )
    assert code == 0 and len(json.loads(out)) == 2

    exported = tmp_path / "lee.txt"
    code, out, _ = _run(capsys, "export", "lee", str(exported), "--format", "word2vec-text")
    assert code == 0 and exported.read_text().startswith(f"{mv.manifest['vocab_size']} 16\n")
    code, _, _ = _run(capsys, "import", str(exported), "--format", "word2vec-text", "--name", "lee")
    np.testing.assert_array_equal(
        StaticVectors.read(Registry(workspace).get("lee@2")).vectors, StaticVectors.read(mv).vectors
    )

    code, out, _ = _run(
        capsys, "eval", "lee@1", "--suite", "wordsim353", "--suite", "google-analogy", "--json"
    )
    results = json.loads(out)
    assert code == 0 and set(results) == {"wordsim353", "google-analogy"}
    assert results["google-analogy"]["evaluated"] + results["google-analogy"]["n_oov"] == 19544
    stored = Registry(workspace).get("lee@1").manifest["eval"]
    assert stored["wordsim353"]["spearman"] == results["wordsim353"]["spearman"]
    code, out, _ = _run(capsys, "eval", "lee@1", "--suite", "simlex999")
    assert code == 0 and "simlex999" in out and "spearman" in out
    code, out, _ = _run(capsys, "eval", "lee@1", "--postprocess", "none", "--json")
    report = json.loads(out)
    assert (
        code == 0 and list(report) == ["postprocess"] and report["postprocess"][0]["step"] == "none"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["import", "{file}", "--format", "word2vec-bin"], "unknown vector format 'word2vec-bin'"),
        (["import", "{file}", "--format", "word2vec-text"], "line 2 of lee.bin is not valid UTF-8"),
        (["import", "{tmp}/none.vec", "--format", "fasttext-vec"], "no such vector file"),
        (
            ["import", "{file}", "--format", "word2vec-binary", "--name", "bad name"],
            "invalid model name",
        ),
        (["import"], "needs a vector FILE"),
        (["export", "lee", "{tmp}/x.txt", "--format", "csv"], "unknown vector format 'csv'"),
        (["similar", "nope", "police"], "no model named 'nope'"),
        (["similar", "lee@7", "police"], "has no version 7"),
        (["similar", "lee", "police", "-k", "0"], "-k must be a positive integer, got 0"),
        (["analogy", "lee", "man", "he", "woman", "-k", "-1"], "-k must be a positive integer"),
        (["analogy", "lee", "man", "he", "woman", "--method", "x"], "unknown analogy method 'x'"),
        (["similar", "lee", "polise"], "'polise' is not in the vocabulary of lee@1"),
        (["eval", "lee", "--suite", "wordsim"], "unknown evaluation suite 'wordsim'"),
        (["eval", "lee", "--pairs", "{tmp}/missing.tsv"], "no such evaluation file"),
    ],
)
def test_cli_errors(
    workspace: Workspace, vec_file: Path, tmp_path: Path, capsys, args: list[str], message: str
) -> None:  # type: ignore[no-untyped-def]
    assert (
        _run(capsys, "import", str(vec_file), "--format", "word2vec-binary", "--name", "lee")[0]
        == 0
    )
    filled = [a.format(file=vec_file, tmp=tmp_path) for a in args]
    code, _, err = _run(capsys, *filled)
    assert code == 1 and message in err and err.startswith("error: ")


def test_oov_error_suggests_spellings(workspace: Workspace, vec_file: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    _run(capsys, "import", str(vec_file), "--format", "word2vec-binary", "--name", "lee")
    code, _, err = _run(capsys, "similar", "lee", "polise")
    assert code == 1 and "hint: close in-vocabulary spellings: police" in err


def test_transformer_import_delegates(workspace: Workspace, capsys) -> None:  # type: ignore[no-untyped-def]
    code, _, err = _run(
        capsys, "import", "--transformer", str(workspace.home / "no-such-model"), "--name", "t"
    )
    assert code == 1 and "error: transformer source" in err
    assert Registry(workspace).list() == []


def _read_position(pid: int, target: Path) -> int | None:
    """Offset the process has read ``target`` up to (Linux /proc), None while not open."""
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        for fd in fd_dir.iterdir():
            if os.readlink(fd) == os.path.realpath(target):
                info = Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text()
                return int(info.split("pos:")[1].split()[0])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def _big_file(path: Path, n: int, dim: int) -> None:
    rng = np.random.default_rng(0)
    block = [" ".join(f"{x:.6f}" for x in rng.standard_normal(dim)) for _ in range(97)]
    with open(path, "w") as fh:
        fh.write(f"{n} {dim}\n")
        for start in range(0, n, 10_000):
            fh.write(
                "".join(f"w{i} {block[i % 97]}\n" for i in range(start, min(n, start + 10_000)))
            )


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/fdinfo").exists(), reason="needs Linux /proc")
def test_killed_import_publishes_nothing(workspace: Workspace, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    big = tmp_path / "big.txt"
    _big_file(big, 120_000, 48)
    size = big.stat().st_size
    env = {**os.environ, "EMBEDOPS_HOME": str(workspace.home)}
    cmd = [
        sys.executable,
        "-m",
        "embedops.cli.main",
        "--quiet",
        "import",
        str(big),
        "--format",
        "word2vec-text",
        "--name",
        "big",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    position = None
    while time.monotonic() < deadline and proc.poll() is None:
        position = _read_position(proc.pid, big)
        if position and 0 < position < size:
            break
        time.sleep(0.005)
    assert proc.poll() is None, f"import ended before it could be killed: {proc.communicate()}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL and position is not None and position < size

    registry = Registry(workspace)
    assert registry.list() == [] and not (workspace.models_dir / "big" / "1").exists()
    code, out, _ = _run(capsys, "models", "list", "--json")
    assert code == 0 and json.loads(out) == []
    # The workspace is still healthy: a complete import gets version 1.
    small = tmp_path / "small.txt"
    _big_file(small, 500, 48)
    assert _run(capsys, "import", str(small), "--format", "word2vec-text", "--name", "big")[0] == 0
    assert [mv.ref for mv in registry.list()] == ["big@1"]
    assert not any(p.name.startswith("model.big") for p in workspace.staging_dir.iterdir())


def test_import_with_a_sif_sample_stores_the_fitted_pooling(
    workspace: Workspace, vec_file: Path, lee_corpus: Path, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    from embedops.models.loader import load_encoder

    args = ["import", str(vec_file), "--format", "word2vec-binary", "--name", "sif"]
    code, _, err = _run(capsys, *args, "--sif-sample", str(tmp_path / "none.txt"))
    assert code == 1 and "no such text sample file" in err
    jsonl = tmp_path / "sample.jsonl"
    jsonl.write_text(
        "\n".join(json.dumps({"text": t}) for t in lee_corpus.read_text().splitlines())
    )
    assert _run(capsys, *args, "--sif-sample", str(jsonl))[0] == 0
    pooling = Registry(workspace).get("sif@1").manifest["pooling"]
    assert pooling["method"] == "sif" and len(pooling["component"]) == 16
    encoder = load_encoder("sif@1", Registry(workspace))
    assert encoder.pooling.component == tuple(pooling["component"])  # type: ignore[attr-defined]
    vectors = encoder.encode(["the police said", ""])
    u = np.asarray(pooling["component"], dtype=np.float32)
    assert abs(float(vectors[0] @ u)) < 1e-4 and not vectors[1].any()
