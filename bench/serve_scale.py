"""Serving a 1M collection (#19): ``embedops serve`` vs Chroma's server on the same vectors, and
search while the index takes writes, refreshes and merges.

Both servers run as their own processes on 127.0.0.1 with the same HNSW settings (M=16,
ef_construction=100, ef_search as given); this process is the load generator (``bench/serve.py``'s
bare asyncio HTTP/1.1 clients, the targets taking turns so both see the same background load).

* Data: the 1,000,000 real-text documents of ``bench/ingest_scale.py`` (corpus sentences, then
  WordNet glosses) embedded by its 64-d word2vec model; ingested with ``embedops ingest`` and
  indexed with ``embedops index build``; Chroma gets the same ids, texts and vectors. Queries
  are the vectors of the next 1,000 documents (not in the collection), sent as vectors to both.
* Measured: QPS, p50 / p99 and server CPU per request for top-10 with the document text, and
  recall@10 of each server's answers against exact search over the same vectors.
* ``--churn``: the embedops load again while a writer adds 1% new documents over HTTP in four
  rounds, each sealed by ``index refresh`` (the size-tiered policy merges small segments),
  and with ``--full-merge`` a final ``index merge``: QPS and p99 beside the quiet figures, and
  every non-2xx answer counted (searches and writes).

    .venv/bin/python bench/serve_scale.py [--data ../shared/data] [--n 1000000]
        [--seconds 20] [--clients 8] [--workers 2] [--ef-search 64] [--churn [--full-merge]]
        [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

import ingest_scale  # noqa: E402
import serve as base  # noqa: E402

from embedops.engine import Embedops  # noqa: E402

COLLECTION = "docs"
MODEL = "w2v64"


def read_jsonl(path: Path, start: int, stop: int) -> tuple[list[str], list[str]]:
    ids, texts = [], []
    with path.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i >= stop:
                break
            if i >= start:
                row = json.loads(line)
                ids.append(row["id"])
                texts.append(row["text"])
    return ids, texts


def prepare_embedops(home: Path, data: Path, out: Path, n: int, hnsw: dict[str, int]
                     ) -> dict[str, Any]:
    """The workspace: the model, the collection ingested from the JSONL file, an HNSW index."""
    marker = home / "serve-scale-ready.json"
    want = {"n": n, **hnsw}
    if marker.is_file() and json.loads(marker.read_text()).get("want") == want:
        return dict(json.loads(marker.read_text())["took"])
    ingest_scale.prepare(home, data, out, 64, MODEL)
    file = ingest_scale.write_docs(data, n, out)
    took = {}
    with Embedops(home=home) as eo:
        if COLLECTION not in {c.name for c in eo.collections.list()}:
            eo.collections.create(COLLECTION, MODEL)
        started = time.perf_counter()
        eo.ingest(COLLECTION, file, quiet=True)
        took["ingest_s"] = round(time.perf_counter() - started, 1)
        time.sleep(3)  # let the bulk load age out of the index's clock-skew re-read window
        started = time.perf_counter()
        eo.build_index(COLLECTION, "hnsw", dict(hnsw), quiet=True)
        took["index_build_s"] = round(time.perf_counter() - started, 1)
    marker.write_text(json.dumps({"want": want, "took": took}))
    return took


def drop_earlier_churn(home: Path, base_ids: list[str]) -> int:
    """Delete what earlier ``--churn`` runs wrote and seal the deletes as tombstones (a refresh
    builds nothing), so both servers hold the same documents; returns how many."""
    with Embedops(home=home) as eo:
        held, _ = eo.load_vectors(COLLECTION, eo.collection_info(COLLECTION).model_version)
        extra = sorted(set(held) - set(base_ids))
        if extra:
            for start in range(0, len(extra), 10_000):
                eo.delete_items(COLLECTION, extra[start:start + 10_000])
            eo.refresh_index(COLLECTION)
    return len(extra)


def collection_vectors(home: Path) -> tuple[list[str], np.ndarray]:
    with Embedops(home=home) as eo:
        version = eo.collection_info(COLLECTION).model_version
        ids, vectors = eo.load_vectors(COLLECTION, version)
    return list(ids), np.asarray(vectors, dtype=np.float32)


def prepare_chroma(port: int, ids: list[str], texts: list[str], vectors: np.ndarray,
                   hnsw: dict[str, int]) -> tuple[str, float]:
    """Load the collection into the running Chroma server: (its query URL, seconds taken)."""
    import chromadb

    client = chromadb.HttpClient(host="127.0.0.1", port=port)
    config = {"hnsw": {"space": "cosine", "max_neighbors": hnsw["M"],
                       "ef_construction": hnsw["ef_construction"], "ef_search": hnsw["ef_search"]}}
    col = client.get_or_create_collection(COLLECTION, configuration=config)  # type: ignore[arg-type]
    started = time.perf_counter()
    if col.count() != len(ids):
        step = 5000
        for start in range(col.count() // step * step, len(ids), step):
            col.upsert(ids=ids[start:start + step], documents=texts[start:start + step],
                       embeddings=vectors[start:start + step])
    took = time.perf_counter() - started
    return (f"http://127.0.0.1:{port}/api/v2/tenants/default_tenant/databases/default_database"
            f"/collections/{col.id}/query", took)


def exact_top(doc_vecs: np.ndarray, qvecs: np.ndarray, ids: list[str], k: int = 10
              ) -> list[list[str]]:
    """Exact cosine top-k, in chunks of documents (1,000 x 1M scores do not fit at once)."""
    docs = doc_vecs / np.maximum(np.linalg.norm(doc_vecs, axis=1, keepdims=True), 1e-12)
    q = qvecs / np.maximum(np.linalg.norm(qvecs, axis=1, keepdims=True), 1e-12)
    best_s = np.full((len(q), k), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(q), k), dtype=np.int64)
    for start in range(0, len(docs), 100_000):
        scores = q @ docs[start:start + 100_000].T
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        cand_s = np.concatenate([best_s, np.take_along_axis(scores, top, axis=1)], axis=1)
        cand_i = np.concatenate([best_i, top + start], axis=1)
        keep = np.argsort(-cand_s, axis=1)[:, :k]
        best_s = np.take_along_axis(cand_s, keep, axis=1)
        best_i = np.take_along_axis(cand_i, keep, axis=1)
    return [[ids[j] for j in row] for row in best_i]


def _start_embedops(home: Path, out: Path, stack: ExitStack, workers: int) -> tuple[str, int]:
    port = base.free_port()
    cmd = [sys.executable, "-m", "embedops.cli.main", "--home", str(home), "serve", "--port",
           str(port), "--no-auth", "--log-level", "warning", "--workers", str(workers)]
    # warm-up loads the 1M-vector index and builds BM25 over 1M texts in each worker: minutes
    proc = base.start(cmd, f"http://127.0.0.1:{port}/readyz", out / "serve-scale-embedops.log",
                      timeout=1200)
    # /readyz answers from whichever worker takes the connection: wait until every worker has
    # warmed up (20 new connections in a row answered 200), or the load starts on fewer
    import httpx

    deadline, streak = time.monotonic() + 1200, 0
    while streak < 20 and time.monotonic() < deadline:
        ok = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code == 200
        streak = streak + 1 if ok else 0
        if not ok:
            time.sleep(1)
    stack.callback(base.stop, proc)
    return f"http://127.0.0.1:{port}", proc.pid


def tree_rss_mb(pid: int) -> dict[str, float]:
    """Resident memory (MB, from /proc) of a server process and of each of its children."""
    def rss(p: int) -> float:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    out = {"parent": rss(pid), **{f"child{n}": rss(int(c)) for n, c in enumerate(children)}}
    return {k: round(v, 1) for k, v in out.items()}


def _start_chroma(out: Path, stack: ExitStack) -> tuple[int, int]:
    import shutil

    port = base.free_port()
    chroma = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    cmd = [chroma, "run", "--path", str(out / "chroma"), "--host", "127.0.0.1", "--port",
           str(port)]
    proc = base.start(cmd, f"http://127.0.0.1:{port}/api/v2/heartbeat",
                      out / "serve-scale-chroma.log")
    stack.callback(base.stop, proc)
    return port, proc.pid


def churn(url: str, ids: list[str], texts: list[str], report: dict[str, Any],
          full_merge: bool) -> None:
    """Write ``ids`` over HTTP (250 a request: the route takes 256 at most) in four rounds, each
    followed by an ``index refresh`` (a new segment; the size-tiered policy merges small ones),
    then, with ``full_merge``, one ``index merge`` into a single segment; counts every answer
    that is not 2xx."""
    import httpx

    bad, started = 0, time.perf_counter()
    rounds: list[dict[str, Any]] = []
    with httpx.Client(base_url=url, timeout=None) as client:
        quarter = max(1, len(ids) // 4)
        for first in range(0, len(ids), quarter):
            t0 = time.perf_counter()
            for start in range(first, min(first + quarter, len(ids)), 250):
                stop = min(start + 250, first + quarter, len(ids))
                items = [{"id": i, "text": t} for i, t in
                         zip(ids[start:stop], texts[start:stop], strict=True)]
                r = client.post(f"/v1/collections/{COLLECTION}/items", json={"items": items})
                bad += r.status_code >= 300
            written = time.perf_counter() - t0
            t0 = time.perf_counter()
            r = client.post(f"/v1/collections/{COLLECTION}/index/refresh", json={})
            bad += r.status_code >= 300
            got = r.json() if r.status_code < 300 else {"error": r.text[:300]}
            rounds.append({"write_s": round(written, 1),
                           "refresh_s": round(time.perf_counter() - t0, 1),
                           **{k: got.get(k) for k in ("added", "merged", "segments", "error")}})
        report["rounds"] = rounds
        if full_merge:
            t0 = time.perf_counter()
            r = client.post(f"/v1/collections/{COLLECTION}/index/merge", json={})
            bad += r.status_code >= 300
            report["merge_s"] = round(time.perf_counter() - t0, 1)
    report["writer_seconds"] = round(time.perf_counter() - started, 1)
    report["writer_non_2xx"] = bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "serve-scale")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--ef-search", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="embedops serve --workers")
    parser.add_argument("--churn", action="store_true")
    parser.add_argument("--full-merge", action="store_true",
                        help="end the churn with 'index merge' (a rebuild into one segment)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    home = args.out / "ws"
    hnsw = {"M": 16, "ef_construction": 100, "ef_search": args.ef_search}
    results: dict[str, Any] = {"setup": {"docs": args.n, "queries": args.queries,
                                         "clients": args.clients, "hnsw": hnsw,
                                         "embedops_workers": args.workers,
                                         "model": "word2vec 64-d (static)"}}
    results["embedops_prepare"] = prepare_embedops(home, args.data, args.out, args.n, hnsw)
    extra = args.queries + (args.n // 100 if args.churn else 0)
    file = ingest_scale.write_docs(args.data, args.n + extra, args.out)
    _, qtexts = read_jsonl(file, args.n, args.n + args.queries)
    new_ids, new_texts = read_jsonl(file, args.n + args.queries, args.n + extra)
    # new ids each run: ids written by an earlier run, with the same text, would be no-op
    # upserts and the refreshes would have nothing to add
    run = time.strftime("%Y%m%dT%H%M%S")
    new_ids = [f"{i}-{run}" for i in new_ids]
    base_ids, texts = read_jsonl(file, 0, args.n)
    results["left_from_earlier_runs"] = drop_earlier_churn(home, base_ids)
    ids, vectors = collection_vectors(home)
    assert ids == base_ids, "the collection must hold exactly the first n documents"
    with Embedops(home=home) as eo:
        qvecs = np.asarray(eo.embed(qtexts, model=MODEL), dtype=np.float32)
    exact = exact_top(vectors, qvecs, ids)
    with ExitStack() as stack:
        started = time.perf_counter()
        url, eo_pid = _start_embedops(home, args.out, stack, args.workers)
        warmup_s = round(time.perf_counter() - started, 1)
        results["embedops_rss_mb_after_warmup"] = tree_rss_mb(eo_pid)
        chroma_port, ch_pid = _start_chroma(args.out, stack)
        chroma_url, chroma_load_s = prepare_chroma(chroma_port, ids, texts, vectors, hnsw)
        results["chroma_rss_mb"] = tree_rss_mb(ch_pid)
        results["chroma_load_s"] = round(chroma_load_s, 1)
        del texts
        eo_target = (f"{url}/v1/collections/{COLLECTION}/search",
                     [json.dumps({"vector": v.tolist(), "k": 10}).encode() for v in qvecs],
                     lambda r: [h["id"] for h in r["hits"]], eo_pid)
        ch_target = (chroma_url,
                     [json.dumps({"query_embeddings": [v.tolist()], "n_results": 10,
                                  "include": ["documents", "distances"]}).encode()
                      for v in qvecs],
                     lambda r: r["ids"][0], ch_pid)
        targets = {"embedops_http_vector": eo_target, "chroma_http": ch_target}
        for name, target in targets.items():
            found, alone = base.answers_of(*target[:3])
            results[f"{name}_recall@10"] = base.ann_recall(found, exact)
            results[f"{name}_one_client"] = alone
        stats = base.interleaved_load(targets, args)
        results.update(stats)
        results["ratios"] = {
            "qps_embedops/chroma": stats["embedops_http_vector"]["qps"]
            / stats["chroma_http"]["qps"],
            "p99_embedops/chroma": stats["embedops_http_vector"]["p99_ms"]
            / stats["chroma_http"]["p99_ms"],
        }
        print(json.dumps({"quiet": results["ratios"]}), file=sys.stderr, flush=True)
        if args.churn:
            report: dict[str, Any] = {}
            writer = threading.Thread(target=churn, args=(url, new_ids, new_texts, report,
                                                          args.full_merge))
            started = time.perf_counter()
            writer.start()
            lat, elapsed, errors = [], 0.0, 0
            while writer.is_alive():
                got, took, bad = base._run_loop(base._load(
                    eo_target[0], eo_target[1], 5.0, args.clients, eo_target[2]))
                lat.extend(got)
                elapsed += took
                errors += bad
            writer.join()
            report["seconds"] = round(time.perf_counter() - started, 1)
            report["search"] = base.summarize(lat, elapsed, errors)
            report["search_non_2xx_or_wrong"] = errors
            results["churn"] = report
            print(json.dumps({"churn": report}), file=sys.stderr, flush=True)
    results["load_average"] = os.getloadavg()
    results["warmup_s"] = warmup_s
    text = json.dumps(results, indent=2, default=str)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
