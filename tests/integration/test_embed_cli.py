"""``embedops embed`` end to end: real MiniLM (offline) and a real static model, real files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from serve_helpers import publish_lee_model

from embedops.cli.main import main
from embedops.config import HOME_ENV, Workspace
from transformer_helpers import shared_minilm, workspace_of


@pytest.fixture
def minilm_home(tmp_path_factory, monkeypatch: pytest.MonkeyPatch):
    mv = shared_minilm(tmp_path_factory)
    monkeypatch.setenv(HOME_ENV, str(workspace_of(mv)))
    return mv


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["-q", "embed", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.transformer
def test_texts_are_encoded_and_summarised(minilm_home, capsys) -> None:
    code, out, _ = _run(capsys, "minilm", "a small dog", "a tiny puppy")
    assert code == 0
    assert "minilm@1: 2 vectors, dim 384" in out and "norm 1.000" in out


@pytest.mark.transformer
def test_text_file_to_npy_reports_empty_and_truncated(minilm_home, tmp_path, capsys) -> None:
    source = tmp_path / "in.txt"
    source.write_text("the cat sat on the mat\n\n" + "word " * 220_000 + "\nrain\n", "utf-8")
    out_path = tmp_path / "vectors.npy"
    code, out, err = _run(capsys, "minilm", "--file", str(source), "--out", str(out_path),
                          "--backend", "onnx", "--batch-size", "2")
    assert code == 0 and "wrote 4 vectors" in out
    vectors = np.load(out_path, allow_pickle=False)
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    assert not vectors[1].any() and np.isfinite(vectors).all()
    assert "1 text(s) longer than the model's token limit" in err
    assert "1 very long one(s) cut" in err and "1 empty text(s)" in err


@pytest.mark.transformer
def test_jsonl_in_and_out_keeps_ids(minilm_home, tmp_path, capsys) -> None:
    source = tmp_path / "docs.jsonl"
    rows = [{"id": "a", "body": "an apple a day"}, {"id": "b", "body": "keeps the doctor away"}]
    source.write_text("\n".join(json.dumps(r) for r in rows) + "\n", "utf-8")
    out_path = tmp_path / "out.jsonl"
    code, _, _ = _run(capsys, "minilm", "--file", str(source), "--text-field", "body",
                      "--out", str(out_path))
    assert code == 0
    written = [json.loads(line) for line in out_path.read_text().splitlines()]
    assert [w["id"] for w in written] == ["a", "b"]
    assert all(w["model"] == "minilm@1" and len(w["vector"]) == 384 for w in written)


@pytest.mark.transformer
def test_bad_inputs_fail_clearly(minilm_home, tmp_path, capsys) -> None:
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("caf\u00e9 au lait\n".encode("latin-1"))
    code, _, err = _run(capsys, "minilm", "--file", str(latin))
    assert code == 1 and "not UTF-8: byte 0xe9 at offset 3" in err
    jsonl = tmp_path / "x.jsonl"
    jsonl.write_text('{"id": 1, "text": "ok"}\n{"id": 2}\n', "utf-8")
    code, _, err = _run(capsys, "minilm", "--file", str(jsonl))
    assert code == 1 and "line 2 has no string field 'text'" in err
    code, _, err = _run(capsys, "minilm", "hi", "--out", str(tmp_path / "v.csv"))
    assert code == 1 and "--out must end in .npy or .jsonl" in err
    code, _, err = _run(capsys, "minilm", "hi", "--backend", "tpu")
    assert code == 1 and "unknown backend 'tpu'" in err
    code, _, err = _run(capsys, "minilm")
    assert code == 1 and "nothing to encode" in err
    code, _, err = _run(capsys, "nosuchmodel", "hi")
    assert code == 1 and "no model named 'nosuchmodel'" in err


def test_static_models_are_encoded_too(workspace: Workspace, tmp_path, capsys) -> None:
    publish_lee_model(workspace, "lee", dim=16)
    out_path = tmp_path / "lee.npy"
    code, out, _ = _run(capsys, "lee", "the government said", "--out", str(out_path))
    assert code == 0 and np.load(out_path).shape == (1, 16)
    code, _, err = _run(capsys, "lee", "hi", "--backend", "onnx")
    assert code == 1 and "backend and threads apply to transformer models" in err
