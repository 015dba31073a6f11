"""Ingest and catalog at scale (#19 item 4): memory and speed of ``embedops ingest`` from 100k
to 1M real-text documents, and the SQLite catalog from 1M to 10M rows.

* **ingest**: documents are the sentences of the shared 13M-word corpus (paragraphs cut
  after . ! ? and ;, 3+ words), then WordNet glosses and GCIDE definitions, as JSONL
  (``{"id", "text"}``), embedded by a small word2vec model trained here on the corpus's
  first lines (a static model, so the run measures reading, hashing, batching and catalog
  writes rather than a transformer). Each size runs ``embedops ingest`` in a fresh process
  whose resident memory is sampled every 0.2 s: bounded memory means the peak at 1M is close
  to the peak at 100k, not 10x it. The anchor is the same work done the naive way: the whole
  file read into a Python list, then ``upsert_items`` over it in calls of 10,000 (the
  per-call limit).
* **catalog** (``--rows``): bring-your-own 8-d vectors written through ``upsert_items`` in
  batches of 10,000 to ``--rows`` rows; per million rows: write rate, p50/p99 of
  ``get_items`` for 100 random ids, the WAL file's largest size, and the database size,
  page size and indexes, so a write rate that falls or a lookup that grows with N shows.

    .venv/bin/python bench/ingest_scale.py [--data ../shared/data] [--sizes 100000,1000000]
        [--rows 10000000] [--skip-ingest] [--skip-catalog] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
from embedops.engine import Embedops  # noqa: E402
from embedops.train.word2vec import TrainConfig  # noqa: E402

SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")


def write_docs(data: Path, n: int, out: Path) -> Path:
    """The first ``n`` documents (corpus sentences, then glosses) as JSONL, cached by size."""
    path = out / f"docs-{n}.jsonl"
    if path.is_file():
        return path
    tmp = path.with_suffix(".tmp")
    written = 0
    with tmp.open("w", encoding="utf-8") as fh:
        with lzma.open(data / "corpus-en-13m.txt.xz", "rt", encoding="utf-8") as src:
            for para in src:
                for sentence in SENTENCE_END.split(para.strip()):
                    if len(sentence.split()) >= 3 and written < n:
                        fh.write(json.dumps({"id": f"s{written}", "text": sentence}) + "\n")
                        written += 1
                if written >= n:
                    break
        for name, field in (("wordnet-glosses.jsonl.xz", "gloss"),
                            ("revdict/docs.jsonl.xz", "text")):
            with lzma.open(data / name, "rt", encoding="utf-8") as src:
                for line in src:
                    if written >= n:
                        break
                    text = json.loads(line)[field]
                    fh.write(json.dumps({"id": f"d{written}", "text": text}) + "\n")
                    written += 1
    if written < n:
        raise SystemExit(f"only {written} documents in the shared data; ask for fewer")
    tmp.replace(path)
    return path


def prepare(home: Path, data: Path, out: Path, dim: int, name: str) -> None:
    """A workspace holding a small word2vec model ``name`` of ``dim`` dimensions."""
    marker = home / f".{name}-ready"
    if marker.is_file():
        return
    corpus = out / "train-corpus.txt"
    if not corpus.is_file():
        with lzma.open(data / "corpus-en-13m.txt.xz", "rt", encoding="utf-8") as src:
            corpus.write_text("".join(line for _, line in zip(range(40_000), src, strict=False)))
    with Embedops(home=home) as eo:
        eo.models.train(corpus, name, TrainConfig(dim=dim, epochs=1, redact=()))
    marker.write_text("{}")


class PeakRss:
    """Samples a process's resident memory (``VmRSS``) every 0.2 s until it exits."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_mb, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        status = Path(f"/proc/{self.pid}/status")
        while not self._stop.is_set():
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.peak_mb = max(self.peak_mb, int(line.split()[1]) / 1024)
            except OSError:
                return
            self._stop.wait(0.2)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_mb


def _timed(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    rss = PeakRss(proc.pid)
    stdout, stderr = proc.communicate()
    took = time.perf_counter() - started
    peak = rss.stop()
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[3:5]} failed ({proc.returncode}): {stderr[-2000:]}")
    return {"seconds": round(took, 1), "peak_rss_mb": round(peak, 1), "stdout": stdout}


def ingest_run(home: Path, file: Path, n: int, model: str) -> dict[str, Any]:
    """``embedops ingest`` of ``file`` into a fresh collection, in a fresh process."""
    name = f"ingest-{n}-{int(time.time())}"
    with Embedops(home=home) as eo:
        eo.collections.create(name, model)
    env = {**os.environ, "EMBEDOPS_HOME": str(home)}
    got = _timed([sys.executable, "-m", "embedops.cli.main", "--quiet", "ingest", name,
                  str(file), "--json"], env)
    report = json.loads(got.pop("stdout"))
    got.update(docs=n, embedded=report["embedded"],
               docs_per_s=round(n / got["seconds"]))
    return got


def naive_run(home: Path, file: Path, n: int, model: str) -> dict[str, Any]:
    """The anchor: the whole file in a list, one ``upsert_items`` call, in a fresh process."""
    name = f"naive-{n}-{int(time.time())}"
    with Embedops(home=home) as eo:
        eo.collections.create(name, model)
    got = _timed([sys.executable, __file__, "--naive-worker", str(home), name, str(file)],
                 dict(os.environ))
    got.pop("stdout")
    got.update(docs=n, docs_per_s=round(n / got["seconds"]))
    return got


def naive_worker(home: str, collection: str, file: str) -> None:
    with open(file, encoding="utf-8") as fh:
        records = [json.loads(line) for line in fh if line.strip()]
    with Embedops(home=home) as eo:
        for start in range(0, len(records), 10_000):  # upsert_items' per-call limit
            eo.upsert_items(collection, records[start:start + 10_000])


def _wal_watch(db: Path, stop: threading.Event, peak: list[int]) -> None:
    wal = db.with_name(db.name + "-wal")
    while not stop.is_set():
        try:
            peak[0] = max(peak[0], wal.stat().st_size)
        except OSError:
            pass
        stop.wait(0.5)


def catalog_run(home: Path, rows: int, model: str, step: int = 1_000_000,
                batch: int = 10_000) -> dict[str, Any]:
    """Bring-your-own vectors through ``upsert_items`` up to ``rows``, measured per step."""
    rng = np.random.default_rng(0)
    name = f"catalog-{rows}-{int(time.time())}"
    out: dict[str, Any] = {"rows": rows, "batch": batch, "steps": []}
    with Embedops(home=home) as eo:
        dim = eo.collections.create(name, model).dim
        db = home / "catalog.db"
        stop, wal_peak = threading.Event(), [0]
        watcher = threading.Thread(target=_wal_watch, args=(db, stop, wal_peak), daemon=True)
        watcher.start()
        written = 0
        while written < rows:
            started, first = time.perf_counter(), written
            target = min(rows, written + step)
            while written < target:
                n = min(batch, target - written)
                items = [{"id": f"r{written + i}", "text": f"row {written + i}"}
                         for i in range(n)]
                vectors = rng.standard_normal((n, dim), dtype=np.float32)
                eo.upsert_items(name, items, vectors=vectors)
                written += n
            took = time.perf_counter() - started
            lookups = []
            for _ in range(100):
                ids = [f"r{int(i)}" for i in rng.integers(0, written, 10)]
                t0 = time.perf_counter()
                got = eo.get_items(name, ids)
                lookups.append(time.perf_counter() - t0)
                assert len(got) == len(set(ids))
            step_out = {
                "rows": written, "rows_per_s": round((written - first) / took),
                "get_10_ids_p50_ms": round(1000 * statistics.median(lookups), 3),
                "get_10_ids_p99_ms": round(1000 * sorted(lookups)[98], 3),
                "db_mb": round(db.stat().st_size / 2**20),
                "wal_peak_mb": round(wal_peak[0] / 2**20),
                "load": round(os.getloadavg()[0], 1),
            }
            out["steps"].append(step_out)
            print(json.dumps(step_out), file=sys.stderr, flush=True)
        stop.set()
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    out["page_size"] = con.execute("PRAGMA page_size").fetchone()[0]
    out["journal_mode"] = con.execute("PRAGMA journal_mode").fetchone()[0]
    out["indexes"] = [r[0] for r in con.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'")]
    con.close()
    return out


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--naive-worker":
        naive_worker(*sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "ingest-scale")
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--naive-sizes", default="100000,1000000")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-catalog", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    home = args.out / "ws"
    results: dict[str, Any] = {"machine": f"{os.cpu_count()} cores"}
    if not args.skip_ingest:
        prepare(home, args.data, args.out, 64, "w2v64")
        results["ingest"], results["naive"] = [], []
        naive_sizes = [s for s in args.naive_sizes.split(",") if s.strip() and int(s) > 0]
        for n in (int(s) for s in args.sizes.split(",")):
            file = write_docs(args.data, n, args.out)
            results["ingest"].append(ingest_run(home, file, n, "w2v64"))
            print(json.dumps({"ingest": results["ingest"][-1]}), file=sys.stderr, flush=True)
            if str(n) in naive_sizes:
                results["naive"].append(naive_run(home, file, n, "w2v64"))
                print(json.dumps({"naive": results["naive"][-1]}), file=sys.stderr, flush=True)
        for n in (int(s) for s in naive_sizes):
            if str(n) not in args.sizes.split(","):
                file = write_docs(args.data, n, args.out)
                results["naive"].append(naive_run(home, file, n, "w2v64"))
                print(json.dumps({"naive": results["naive"][-1]}), file=sys.stderr, flush=True)
    if not args.skip_catalog:
        prepare(home, args.data, args.out, 8, "w2v8")
        results["catalog"] = catalog_run(home, args.rows, "w2v8")
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
