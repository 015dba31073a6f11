"""Ingest end to end with a real static model: idempotent re-runs, upserts, deletes, duplicate
ids, bad lines, encryption, dual write, the CLI, and a real SIGKILL in the middle of an ingest."""

from __future__ import annotations

import functools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from embedops.cli.main import main
from embedops.config import Workspace
from embedops.engine import Embedops
from embedops.errors import FormatError, InvalidInput, NotFound
from embedops.models.loader import load_encoder
from embedops.models.registry import Registry
from embedops.models.static import StaticVectors, publish_static
from embedops.store import Catalog
from embedops.store.crypto import KEY_ENV, generate_key
from embedops.store.ingest import ingest
from embedops.text.tokenize import TokenizerSpec


@functools.lru_cache(maxsize=2)
def _vocab(corpus: Path) -> list[str]:
    spec = TokenizerSpec()
    return sorted({tok for line in corpus.read_text().splitlines() for tok in spec.tokenize(line)})


def _publish(registry: Registry, corpus: Path, name: str, dim: int) -> str:
    """A static model over the corpus vocabulary with seeded random vectors (fast to build)."""
    spec = TokenizerSpec()
    vocab = _vocab(corpus)
    vectors = np.random.default_rng(dim).standard_normal((len(vocab), dim)).astype(np.float32)
    return publish_static(registry, name, StaticVectors(vocab, vectors), kind="static",
                          spec=spec).ref


@pytest.fixture
def model(registry: Registry, lee_corpus: Path) -> str:
    return _publish(registry, lee_corpus, "tiny", 16)


@pytest.fixture
def docs(lee_corpus: Path, tmp_path: Path) -> Path:
    path = tmp_path / "docs.jsonl"
    lines = [ln for ln in lee_corpus.read_text().splitlines() if ln.strip()][:120]
    with path.open("w") as fh:
        for i, text in enumerate(lines):
            fh.write(json.dumps({"id": f"d{i}", "text": text, "section": i % 3}) + "\n")
    return path


@pytest.fixture
def catalog(workspace: Workspace, model: str) -> Catalog:
    cat = Catalog(workspace)
    cat.create_collection("news", model, dim=16)
    yield cat
    cat.close()


def _embed(*encoders):  # the write rule's shape: texts -> {version: vectors}
    return lambda texts: {enc.version: enc.encode(texts) for enc in encoders}


def test_ingest_then_rerun_is_idempotent(catalog: Catalog, model: str, docs: Path) -> None:
    encoder = load_encoder(model)
    first = ingest(catalog, "news", docs, _embed(encoder), batch_size=32)
    assert (first.read, first.embedded, first.unchanged, first.failed_lines) == (120, 120, 0, [])
    ids, vecs = catalog.load_vectors("news", model)
    assert len(ids) == 120 and vecs.shape == (120, 16) and np.abs(vecs).sum() > 0
    texts = [it.text for it in catalog.get_items("news", ids[:5])]
    np.testing.assert_allclose(encoder.encode(texts), vecs[:5], rtol=1e-5, atol=1e-6)
    again = ingest(catalog, "news", docs, _embed(encoder), batch_size=32)
    assert (again.embedded, again.unchanged) == (0, 120)
    stats = catalog.stats("news")
    assert stats["ingest_runs"][0]["report"]["unchanged"] == 120


@pytest.mark.parametrize("batch_size", [1024, 7])  # the repeat in one batch, or batches apart
def test_upserts_deletes_and_duplicates(
    catalog: Catalog, model: str, docs: Path, tmp_path: Path, batch_size: int
) -> None:
    encoder = load_encoder(model)
    ingest(catalog, "news", docs, _embed(encoder))
    rows = [json.loads(ln) for ln in docs.read_text().splitlines()]
    rows[3]["text"] = "completely rewritten text about cricket"
    rows[4]["section"] = 99
    rows[5]["gone"] = True
    rows.append({"id": "d3", "text": "the last duplicate wins"})
    changed = tmp_path / "changed.jsonl"
    changed.write_text("\n".join(json.dumps(r) for r in rows[:100] + rows[-1:]) + "\n")
    report = ingest(catalog, "news", changed, _embed(encoder), delete_field="gone",
                    delete_missing=True, batch_size=batch_size)
    # d3 (last version) and d4; batches apart, d3's first version was written, then replaced
    assert report.duplicates == 1 and report.embedded == (2 if batch_size > 100 else 3)
    assert report.deleted == 1 + 20  # d5 by field, d100..d119 missing from the file
    assert catalog.get_collection("news").item_count == 99
    d3, d4 = catalog.get_items("news", ["d3", "d4"])
    assert d3.text == "the last duplicate wins" and d4.metadata == {"section": 99}
    assert catalog.missing_vectors("news", model) == []


def test_bad_lines_are_reported_and_block_delete_missing(
    catalog: Catalog, model: str, docs: Path, tmp_path: Path
) -> None:
    encoder = load_encoder(model)
    ingest(catalog, "news", docs, _embed(encoder))
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"id": "x1", "text": "fine text"}\n{broken\n{"id": "x2"}\n'
                    + b'{"id": "x3", "text": "bad \xff byte"}\n')
    report = ingest(catalog, "news", bad, _embed(encoder), delete_missing=True)
    assert [line for line, _ in report.failed_lines] == [2, 3, 4]
    assert "byte offset" in report.failed_lines[2][1]
    assert report.deleted == 0 and "skipped" in report.notes[0]
    summary = report.to_dict(max_failed=1)
    assert summary["failed_count"] == 3
    assert summary["failed_lines"] == [[2, report.failed_lines[0][1]]]
    assert catalog.get_collection("news").item_count == 121
    only_bad = tmp_path / "only_bad.jsonl"
    only_bad.write_text('{"name": "a", "body": "b"}\n')
    with pytest.raises(FormatError, match="no 'id' field"):
        ingest(catalog, "news", only_bad, _embed(encoder))


def test_missing_file_and_bad_batch_size_are_refused(
    workspace: Workspace, model: str, docs: Path, tmp_path: Path
) -> None:
    with Embedops(workspace) as eo:
        eo.collections.create("news", model)
        with pytest.raises(NotFound, match="no file at 'missing.jsonl'"):
            eo.ingest("news", tmp_path / "missing.jsonl")
        with pytest.raises(InvalidInput, match="batch size"):
            eo.ingest("news", docs, batch_size=0)


def test_dual_write_with_candidate_and_encrypted(
    workspace: Workspace, registry: Registry, lee_corpus: Path, model: str, docs: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(KEY_ENV, generate_key())
    candidate = _publish(registry, lee_corpus, "cand", 8)
    with Catalog(workspace) as cat:
        cat.create_collection("secret", model, dim=16, encrypted=True)
        cat.set_candidate_version("secret", candidate)
    with Embedops(workspace) as eo:  # the engine's write rule: active and candidate
        report = eo.ingest("secret", docs)
        assert report.embedded == 120
        assert eo.load_vectors("secret", candidate)[1].shape == (120, 8)
        eo._catalog.checkpoint()
    first_text = json.loads(docs.read_text().splitlines()[0])["text"]
    assert first_text.encode()[:40] not in workspace.catalog_path.read_bytes()


def test_cli_collections_and_ingest(
    workspace: Workspace, model: str, docs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["collections", "create", "news", "--model", "tiny", "--metric", "ip"]) == 0
    assert "tiny@1, dim 16, ip" in capsys.readouterr().out
    assert main(["collections", "create", "news", "--model", "tiny"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["ingest", "news", str(docs), "--batch-size", "50", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["embedded"] == 120
    assert main(["collections", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(c["name"], c["item_count"], c["metric"]) for c in listed] == [("news", 120, "ip")]
    assert main(["collections", "show", "news"]) == 0
    assert json.loads(capsys.readouterr().out)["vectors"] == {model: 120}
    assert main(["ingest", "news", str(docs), "--format", "xml"]) == 1
    assert "--format must be one of" in capsys.readouterr().err
    assert main(["ingest", "nope", str(docs)]) == 1
    assert "no collection named 'nope'" in capsys.readouterr().err
    (workspace.indexes_dir / "news" / "tiny_1").mkdir(parents=True)
    assert main(["collections", "delete", "news", "--yes"]) == 0
    assert not (workspace.indexes_dir / "news").exists()
    assert main(["collections", "create", "s", "--model", "tiny", "--encrypted"]) == 1
    assert "EMBEDOPS_KEY" in capsys.readouterr().err


def _count(db: Path, table: str) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


@pytest.mark.slow
def test_sigkill_midway_then_rerun_stores_everything_once(
    workspace: Workspace, model: str, lee_corpus: Path, tmp_path: Path
) -> None:
    lines = [ln for ln in lee_corpus.read_text().splitlines() if ln.strip()]
    total = 6000
    big = tmp_path / "big.jsonl"
    with big.open("w") as fh:
        for i in range(total):
            words = lines[i % len(lines)].split()[i % 50 :][:12]
            fh.write(json.dumps({"id": f"k{i}", "text": " ".join(words) + f" #{i}"}) + "\n")
    with Catalog(workspace) as cat:
        cat.create_collection("big", model, dim=16)
    cmd = [sys.executable, "-m", "embedops.cli.main", "--quiet", "ingest", "big", str(big),
           "--batch-size", "50"]
    env = {**os.environ, "EMBEDOPS_HOME": str(workspace.home)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _count(workspace.catalog_path, "items") < 100 and proc.poll() is None:
        assert time.monotonic() < deadline, "ingest never committed a batch"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    stored = _count(workspace.catalog_path, "items")
    assert 0 < stored < total, f"kill landed outside the ingest ({stored} of {total} stored)"
    rerun = subprocess.run([*cmd, "--json"], env=env, capture_output=True, text=True, check=True)
    report = json.loads(rerun.stdout)
    assert report["unchanged"] == stored and report["embedded"] == total - stored
    with Catalog(workspace) as cat:
        assert cat.get_collection("big").item_count == total
        ids, vecs = cat.load_vectors("big", model)
    assert sorted(ids) == sorted(f"k{i}" for i in range(total)) and vecs.shape == (total, 16)
    assert _count(workspace.catalog_path, "vectors") == total
    assert _count(workspace.catalog_path, "lineage") == total


def test_cli_ingests_csv_parquet_and_text(
    workspace: Workspace, model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    assert main(["collections", "create", "mixed", "--model", model]) == 0
    capsys.readouterr()
    csv_file = tmp_path / "words.csv"
    csv_file.write_text('word,gloss,pos\ncat,"a small, furry animal",n\ndog,a loyal friend,n\n')
    assert main(["ingest", "mixed", str(csv_file), "--id-field", "word",
                 "--text-field", "gloss", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["embedded"] == 2
    pq.write_table(pa.table({"id": ["p1", "p2"], "text": ["markets fell", "rain today"]}),
                   tmp_path / "more.parquet")
    assert main(["ingest", "mixed", str(tmp_path / "more.parquet")]) == 0
    assert "embedded 2" in capsys.readouterr().out
    (tmp_path / "lines.txt").write_text("first plain line\nsecond plain line\n")
    assert main(["ingest", "mixed", str(tmp_path / "lines.txt"), "--text-ids", "hash"]) == 0
    with Catalog(workspace) as cat:
        items = list(cat.iter_items("mixed"))
    assert [it.id for it in items][:4] == ["cat", "dog", "p1", "p2"] and len(items) == 6
    assert items[0].metadata == {"pos": "n"} and items[0].text == "a small, furry animal"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "ok", "text": "fine"}\n{oops\n')
    assert main(["ingest", "mixed", str(bad)]) == 0
    assert "bad.jsonl line 2: invalid JSON" in capsys.readouterr().err


def test_cli_encrypted_collection_and_rekey(
    workspace: Workspace, model: str, docs: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["collections", "keygen"]) == 0
    old = capsys.readouterr().out.strip()
    monkeypatch.setenv(KEY_ENV, old)
    assert main(["collections", "default-encryption", "on"]) == 0
    assert main(["collections", "create", "vault", "--model", model]) == 0
    assert "encrypted" in capsys.readouterr().out
    assert main(["ingest", "vault", str(docs)]) == 0
    assert main(["collections", "rekey", "vault"]) == 1
    assert "EMBEDOPS_NEW_KEY is not set" in capsys.readouterr().err
    new = generate_key()
    monkeypatch.setenv("EMBEDOPS_NEW_KEY", new)
    assert main(["collections", "rekey", "vault"]) == 0
    assert main(["ingest", "vault", str(docs)]) == 1  # the old key no longer opens it
    err = capsys.readouterr().err
    assert "key id" in err and old not in err and new not in err
    monkeypatch.setenv(KEY_ENV, new)
    assert main(["ingest", "vault", str(docs), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["unchanged"] == 120
