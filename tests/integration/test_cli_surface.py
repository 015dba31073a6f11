"""The CLI's surface, walked from the typer app: help text on every option and argument,
``--json`` on every leaf command (and its output parses), completion, ``-v``/``--log-level``,
and library log noise kept off stderr by default."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from embedops.cli.main import app, main
from embedops.config import Workspace


def _leaves(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    commands = getattr(command, "commands", None)
    if commands is None:
        yield " ".join(path), command
        return
    for name, sub in sorted(commands.items()):
        yield from _leaves(sub, (*path, name))


ROOT = typer.main.get_command(app)
LEAVES = dict(_leaves(ROOT))


def test_the_walk_finds_every_command_group() -> None:
    groups = {path.split()[0] for path in LEAVES if " " in path}
    assert {"collections", "golden", "index", "keys", "models", "rollout"} <= groups
    assert len(LEAVES) >= 45


@pytest.mark.parametrize("path", sorted(LEAVES))
def test_every_option_and_argument_has_help(path: str) -> None:
    missing = [p.name for p in LEAVES[path].params if not (getattr(p, "help", "") or "").strip()]
    assert not missing, f"'embedops {path}': no help text on {missing}"
    assert (LEAVES[path].help or "").strip(), f"'embedops {path}' has no docstring"


def test_root_options_have_help_completion_and_logging() -> None:
    names = {opt for p in ROOT.params for opt in getattr(p, "opts", [])}
    assert {"--install-completion", "--show-completion", "-v", "--verbose", "--log-level",
            "--quiet", "--home"} <= names
    assert all((getattr(p, "help", "") or "").strip() for p in ROOT.params)


@pytest.mark.parametrize("path", sorted(LEAVES))
def test_every_leaf_command_lists_json_in_its_help(path: str, capsys) -> None:
    assert main([*path.split(), "--help"]) == 0
    assert "--json" in capsys.readouterr().out


def test_kind_is_the_one_spelling_and_backend_a_hidden_alias(capsys) -> None:
    assert main(["index", "build", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--kind" in text and "--backend" not in text
    assert main(["rollout", "start", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--kind" in text and "--index " not in text


# -- --json output parses, on a real workspace --------------------------------------------------
@pytest.fixture(scope="module")
def cli_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("surface") / "ws"


@pytest.fixture
def run_json(cli_home: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> Any:
    monkeypatch.setenv("EMBEDOPS_HOME", str(cli_home))

    def call(*args: str) -> Any:
        code = main(["--quiet", *args, "--json"])
        out = capsys.readouterr()
        assert code == 0, out.err
        return json.loads(out.out)

    return call


def test_representative_commands_print_json(run_json, lee_corpus: Path, tmp_path: Path) -> None:
    trained = run_json("train", str(lee_corpus), "--name", "lee", "--epochs", "1",
                       "--min-count", "2", "--dim", "16")
    assert trained["ref"] == "lee@1" and trained["vocab_size"] > 1000
    assert run_json("models", "list")[0]["ref"] == "lee@1"
    assert run_json("models", "show", "lee@1")["name"] == "lee"
    assert len(run_json("similar", "lee", "government", "-k", "3")) == 3
    assert run_json("export", "lee@1", str(tmp_path / "lee.txt"))["words"] > 1000
    imported = run_json("import", str(tmp_path / "lee.txt"), "--name", "copy")
    assert imported["ref"] == "copy@1"
    assert run_json("models", "delete", "copy@1", "--yes") == {"deleted": "copy@1"}
    embedded = run_json("embed", "lee", "a bushfire near Sydney")
    assert embedded["dim"] == 16 and len(embedded["vectors"][0]) == 16
    assert run_json("collections", "create", "news", "--model", "lee")["name"] == "news"
    docs = tmp_path / "docs.txt"
    docs.write_text("\n".join(lee_corpus.read_text(errors="replace").splitlines()[:40]))
    assert run_json("ingest", "news", str(docs))["embedded"] == 40
    assert run_json("index", "build", "news", "--kind", "hnsw")["kind"] == "hnsw"
    assert run_json("index", "build", "news", "--backend", "flat")["kind"] == "flat"
    assert all(c["ok"] for c in run_json("index", "verify", "news"))
    assert run_json("index", "status", "news")["items"] == 40
    for mode in ("hybrid", "two-stage", "two_stage"):
        assert run_json("search", "news", "fire", "-k", "2", "--mode", mode)["hits"]
    assert run_json("drift", "news", "--reference-rows", "0:20", "--current-rows", "20:")[
        "n_current"] == 20
    assert run_json("collections", "list")[0]["item_count"] == 40
    assert len(run_json("collections", "keygen")["key"]) > 20
    assert run_json("collections", "delete", "news", "--yes")["deleted"] == "news"


def test_key_commands_print_json(run_json) -> None:
    created = run_json("keys", "create", "--role", "read", "--name", "svc",
                       "--collection", "news", "--expires", "30d")
    assert created["role"] == "read" and created["collections"] == ["news"] and created["active"]
    assert len(created["key"]) > 20
    rotated = run_json("keys", "rotate", created["id"], "--overlap", "1h")
    assert rotated["old"]["id"] == created["id"] and rotated["new"]["name"] == "svc"
    assert rotated["key"] != created["key"]
    listed = {k["id"]: k for k in run_json("keys", "list")}
    assert created["key"] not in json.dumps(listed)  # the list never holds a key
    revoked = run_json("keys", "revoke", rotated["new"]["id"])
    assert revoked["revoked_at"] is not None and revoked["active"] is False


def test_serve_json_announces_the_port_it_picked(cli_home: Path) -> None:
    import os
    import urllib.request

    env = {**os.environ, "EMBEDOPS_HOME": str(cli_home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "embedops.cli.main", "serve", "--port", "0", "--no-auth",
         "--no-warmup", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        announced = json.loads(line)
        assert announced["event"] == "listening" and announced["port"] > 0
        assert announced["url"] == f"http://127.0.0.1:{announced['port']}"
        assert announced["auth"] is False and announced["pid"] == proc.pid
        with urllib.request.urlopen(announced["url"] + "/healthz", timeout=30) as reply:
            assert reply.status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=60)


# -- logging and library noise ------------------------------------------------------------------
def test_library_records_are_held_back_by_default(capsys) -> None:
    from embedops.logs import configure

    try:
        configure()
        logging.warning("root chatter from a library")  # how onnxruntime's quantizer logs
        logging.getLogger("bm25s").debug("Building index from IDs objects")
        logging.getLogger("gensim.models.word2vec").info("EPOCH 0: training on 1 words")
        logging.getLogger("embedops.engine.indexes").warning("snapshot quarantined")
        err = capsys.readouterr().err
        assert err == "warning: snapshot quarantined\n"
        configure(verbose=1)
        logging.warning("root chatter from a library")
        logging.getLogger("embedops.engine.indexes").info("loaded")
        err = capsys.readouterr().err
        assert "warning root: root chatter" in err and "info embedops.engine.indexes: loaded" in err
        configure(log_level="error")
        logging.getLogger("embedops.x").warning("hidden")
        assert capsys.readouterr().err == ""
    finally:
        configure()


def test_bad_log_level_is_a_one_line_error(capsys) -> None:
    assert main(["--log-level", "loud", "models", "list"]) == 1
    assert capsys.readouterr().err.startswith("error: unknown --log-level 'loud'")


def test_third_party_progress_bars_are_off_in_the_cli() -> None:
    code = ("import sys; from embedops.cli.main import main; main(['--version']); "
            "from tqdm import tqdm; print(tqdm(range(3), file=sys.stderr).disable)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.splitlines()[-1] == "True" and "it/s" not in out.stderr


def test_user_mistakes_are_one_line_errors(workspace: Workspace, tmp_path: Path,
                                           capsys) -> None:
    cases = [
        (["ingest", "docs", "missing.jsonl"], "missing.jsonl"),
        (["train", str(tmp_path / "nope.txt"), "--name", "x"], "nope.txt"),
        (["golden", "import", "dev", str(tmp_path / "nope.jsonl")], "nope.jsonl"),
        (["drift", "docs", "--reference-rows", "0:5", "--current-rows", "5:"], "docs"),
        (["embed", "nomodel", "--file", str(tmp_path / "nope.txt")], "nope"),
        (["import", str(tmp_path / "nope.vec")], "nope.vec"),
    ]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    cases.append((["golden", "import", "dev", str(empty)], "no queries"))
    for args, named in cases:
        assert main(args) == 1, args
        err = capsys.readouterr().err
        assert err.startswith("error: ") and named in err and "Traceback" not in err, (args, err)


def test_os_errors_and_bad_parquet_are_one_line_errors(workspace: Workspace, tmp_path: Path,
                                                      lee_corpus: Path, capsys) -> None:
    assert main(["-q", "train", str(lee_corpus), "--name", "lee", "--epochs", "1",
                 "--dim", "8"]) == 0
    assert main(["-q", "collections", "create", "docs", "--model", "lee"]) == 0
    capsys.readouterr()
    folder = tmp_path / "a-folder"
    folder.mkdir()
    assert main(["-q", "export", "lee@1", str(folder)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {folder}: Is a directory") and "Traceback" not in err
    fake = tmp_path / "fake.parquet"
    fake.write_text("id,text\n1,hello\n")
    assert main(["-q", "ingest", "docs", str(fake)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: fake.parquet is not a readable Parquet file") and "hint:" in err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["-q", "ingest", "docs", str(empty)]) == 0
    assert "empty.jsonl holds no records" in capsys.readouterr().err


def test_parquet_without_pyarrow_names_the_extra(tmp_path: Path, monkeypatch) -> None:
    from embedops.errors import DependencyMissing
    from embedops.store.readers import read_records

    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # as if not installed
    path = tmp_path / "docs.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(DependencyMissing) as caught:
        list(read_records(path))
    assert "pyarrow" in caught.value.message and "embedops[parquet]" in str(caught.value.hint)


def test_train_warns_when_the_model_is_degenerate(workspace: Workspace, lee_corpus: Path,
                                                  capsys) -> None:
    # CBOW with the defaults on 60k tokens: every neighbour ends up at cosine ~0.999.
    assert main(["-q", "train", str(lee_corpus), "--name", "cbow", "--json"]) == 0
    out = capsys.readouterr()
    warnings = json.loads(out.out)["warnings"]
    assert any("60,302 tokens" in w for w in warnings)
    assert any("collapsed" in w for w in warnings)
    assert out.err.count("warning: ") == len(warnings) == 2
    # Skip-gram with more epochs on the same text does not collapse (small corpus still noted).
    assert main(["-q", "train", str(lee_corpus), "--name", "sg", "--sg", "--epochs", "20",
                 "--min-count", "2", "--dim", "50", "--json"]) == 0
    warnings = json.loads(capsys.readouterr().out)["warnings"]
    assert not any("collapsed" in w for w in warnings)
    # Still a small corpus, but the advice it already follows is not repeated.
    assert len(warnings) == 1 and "60,302 tokens" in warnings[0] and "--sg" not in warnings[0]


def test_degeneracy_checks_on_tables() -> None:
    import numpy as np

    from embedops.engine.model_ops import degeneracy_warnings
    from embedops.models.static import StaticVectors

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(3000)]
    healthy = StaticVectors(words, rng.normal(size=(3000, 32)).astype(np.float32))
    assert degeneracy_warnings(healthy, 2_000_000, 32) == []
    base = rng.normal(size=32).astype(np.float32)
    collapsed = StaticVectors(words[:500], (base + 0.01 * rng.normal(size=(500, 32))
                                            ).astype(np.float32))
    found = degeneracy_warnings(collapsed, 2_000_000, 32)
    assert len(found) == 2 and "500 words" in found[0] and "collapsed" in found[1]


# -- install story --------------------------------------------------------------------------------
def test_api_docs_load_their_assets_from_the_package_not_a_cdn(workspace: Workspace) -> None:
    import httpx
    from serve_helpers import running_server

    from embedops.serve.app import create_app
    from embedops.serve.settings import ServeSettings

    app = create_app(ServeSettings(home=str(workspace.home), warmup=False))
    with running_server(app) as base:
        for page, asset in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
            html = httpx.get(f"{base}{page}").text
            assert "cdn.jsdelivr.net" not in html and "unpkg.com" not in html
            url = next(part for part in html.split('"') if part.endswith(asset))
            answer = httpx.get(f"{base}{url}")
            assert answer.status_code == 200 and len(answer.content) > 100_000


def test_one_progress_display_only_on_a_terminal(monkeypatch, capsys) -> None:
    from embedops import progress

    with progress.progress_bar("work", 3, quiet=False) as task:  # stderr is captured: no tty
        task.advance(3)
    assert type(task).__name__ == "_NullTask" and capsys.readouterr().err == ""
    monkeypatch.setenv(progress.FORCE_ENV, "1")
    with progress.progress_bar("work", 3, quiet=False) as task:
        task.advance(3)
    assert type(task).__name__ == "_Task" and "work" in capsys.readouterr().err
    with progress.progress_bar("work", 3, quiet=True) as task:
        task.advance(3)
    assert type(task).__name__ == "_NullTask"


def test_a_hub_id_is_refused_without_allow_download(workspace: Workspace, capsys) -> None:
    assert main(["import", "--transformer", "sentence-transformers/all-mpnet-base-v2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: transformer source 'sentence-transformers/all-mpnet-base-v2'")
    assert "--allow-download" in err and "Traceback" not in err
    assert main(["import", "--help"]) == 0
    assert "--allow-download" in capsys.readouterr().out
