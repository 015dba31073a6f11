"""``embedops train`` end to end: summary, errors, and a SIGKILL midway that publishes nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from embedops.cli.main import main
from embedops.config import Workspace

FAST = ["--epochs", "1", "--dim", "16", "--workers", "1"]


def _models(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    capsys.readouterr()
    assert main(["models", "list", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_train_prints_the_new_ref_and_summary(
    workspace: Workspace, lee_corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", str(lee_corpus), "--name", "lee", *FAST, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ref"] == "lee@1" and summary["dim"] == 16 and summary["kind"] == "word2vec"
    assert summary["corpus"]["tokens"] > 50_000 and summary["vocab_size"] > 1000
    assert main(["train", str(lee_corpus), "--name", "lee", *FAST, "--model", "fasttext"]) == 0
    out = capsys.readouterr().out
    assert "trained lee@2" in out and "tokens" in out and "words/s" in out
    assert [m["ref"] for m in _models(capsys)] == ["lee@1", "lee@2"]


def test_train_errors_are_clear(
    workspace: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", str(tmp_path / "missing.txt"), "--name", "x"]) == 1
    assert "missing.txt' does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"some words here\nand \xff there\n" * 3)
    assert main(["train", str(bad), "--name", "x", *FAST]) == 1
    err = capsys.readouterr().err
    assert "byte offset 20 (line 2)" in err and "--replace-bad-bytes" in err
    assert main(["train", str(bad), "--name", "x", *FAST, "--min-count", "1",
                 "--replace-bad-bytes"]) == 0
    assert "3 bad bytes replaced" in capsys.readouterr().out  # one per line
    assert main(["train", str(bad), "--name", "x", "--dim", "0"]) == 1
    assert "dim must be >= 1" in capsys.readouterr().err
    assert [m["ref"] for m in _models(capsys)] == ["x@1"]


@pytest.mark.slow
def test_sigkill_midway_publishes_nothing_and_a_rerun_works(
    workspace: Workspace, lee_corpus: Path, tmp_path: Path
) -> None:
    big = tmp_path / "big.txt"
    big.write_text(lee_corpus.read_text() * 4)
    cmd = [sys.executable, "-m", "embedops.cli.main", "--home", str(workspace.home), "train",
           str(big), "--name", "k", "--epochs", "200", "--workers", "1"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not list(workspace.staging_dir.glob("train.k.*/tokens.txt")):
            assert proc.poll() is None, "train ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.0)  # well into tokenizing or training
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (workspace.models_dir / "k").exists() or not any(
        p.name.isdigit() for p in (workspace.models_dir / "k").iterdir()
    )
    listed = subprocess.run(
        [sys.executable, "-m", "embedops.cli.main", "--home", str(workspace.home), "models",
         "list", "--json"], capture_output=True, text=True, check=True,
    )
    assert json.loads(listed.stdout) == []
    assert main(["train", str(lee_corpus), "--name", "k", *FAST]) == 0
    assert [p.name for p in (workspace.models_dir / "k").iterdir() if p.name.isdigit()] == ["1"]
    assert list(workspace.staging_dir.iterdir()) == []  # the dead run's scratch is cleaned
