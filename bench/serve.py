"""HTTP serving benchmark: embedops serve vs Chroma's own server on the same MiniLM vectors.

Both servers run as their own processes on 127.0.0.1; this process is the load generator
(N concurrent keep-alive clients on bare asyncio HTTP/1.1 connections, bounded in time per
target). The collection
is the reverse-dictionary docs-20k set; documents and dev queries are MiniLM vectors encoded
once and cached under ``bench/out/`` (shared with the other benchmarks).

What is measured, per target: search QPS and p50/p99 latency for top-10 with the document text
in the answer, and recall@10 of the ANN index against exact search on the same query vectors
(plus recall@10 of the headwords, the task metric). Query vectors: embedops is sent the query
*text*, whose embedding the server's query cache already holds (a first pass through
``/v1/embed`` warms it; that pass also returns the vectors used), and, as a third target, those
vectors themselves (``"vector"`` in the search body, like for like with Chroma); Chroma is sent
the same vectors. Both use HNSW (M=16, ef_construction=100, same ef_search). The in-process
line runs the same facade call (with the same query cache) without HTTP, to show the HTTP
overhead.

    .venv/bin/python bench/serve.py [--data ../shared/data] [--seconds 20] [--clients 8]

``--embeddings`` runs the embeddings benchmark instead (``bench/serve_embeddings.py``):
``/v1/embeddings`` against a sentence-transformers + FastAPI server on the same MiniLM, and
cold start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from _minilm_cache import minilm_vectors  # noqa: E402

from embedops.evaluate.retrieval import evaluate_run  # noqa: E402

COLLECTION = "revdict"
K = 10


def read_data(data: Path) -> tuple[list[str], list[str], list[str], list[list[str]]]:
    """(doc ids, doc texts, queries, relevant headwords) of docs-20k and the dev queries."""
    import lzma

    ids, texts = [], []
    with lzma.open(data / "revdict" / "docs-20k.jsonl.xz", "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                ids.append(row["id"])
                texts.append(row["text"])
    rows = [json.loads(x) for x in (data / "revdict" / "queries-dev.jsonl").read_text().split("\n")
            if x.strip()]
    return ids, texts, [r["query"] for r in rows], [r["relevant"] for r in rows]


# -- embedops ----------------------------------------------------------------------------------
def prepare_workspace(home: Path, ids: list[str], texts: list[str], vectors: np.ndarray,
                      hnsw: dict[str, int]) -> None:
    """A workspace with MiniLM, the revdict collection (precomputed vectors) and an HNSW index."""
    from embedops.config import Workspace
    from embedops.engine import Embedops

    marker = home / "bench-ready.json"
    if marker.exists() and json.loads(marker.read_text()) == {"n": len(ids), "v": 2, **hnsw}:
        return
    shutil.rmtree(home, ignore_errors=True)
    ws = Workspace(home).ensure()
    api = Embedops(ws)
    mv = api.models.import_transformer("minilm")
    api.collections.create(COLLECTION, mv.ref, metric="cosine")
    for start in range(0, len(ids), 2000):
        items = [{"id": i, "text": t} for i, t in zip(ids[start:start + 2000],
                                                       texts[start:start + 2000], strict=True)]
        api.upsert_items(COLLECTION, items, vectors=vectors[start:start + 2000])
    # Served indexes re-read catalog changes from the last 2 s before their snapshot on every
    # search (a clock-skew margin); a bulk load right before the build would be re-read by
    # every query, which no real deployment sees for long. Let it age out first.
    time.sleep(3)
    api.build_index(COLLECTION, "hnsw", dict(hnsw), quiet=True)
    api.close()
    marker.write_text(json.dumps({"n": len(ids), "v": 2, **hnsw}))


def start(cmd: list[str], ready_url: str, log: Path, timeout: float = 300) -> subprocess.Popen:
    """Start a server process and wait (up to ``timeout`` s) until ``ready_url`` answers 200."""
    import httpx

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(log, "wb"))  # noqa: SIM115
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{cmd[0]} exited early; see {log}")
        try:
            if httpx.get(ready_url, timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    proc.kill()
    raise SystemExit(f"{cmd} did not become ready; see {log}")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def embed_queries(base: str, queries: list[str]) -> np.ndarray:
    """Query vectors from the server (this also fills its query cache)."""
    import httpx

    out = []
    with httpx.Client(base_url=base, timeout=120) as c:
        for start in range(0, len(queries), 64):
            resp = c.post("/v1/embed", json={"texts": queries[start:start + 64]})
            resp.raise_for_status()
            out.append(np.asarray(resp.json()["vectors"], dtype=np.float32))
    return np.concatenate(out)


# -- load generation ---------------------------------------------------------------------------
async def _load(url: str, bodies: list[bytes], seconds: float, clients: int,
                parse: Callable[[Any], list[Any]], expect: int = K
                ) -> tuple[list[float], float, int]:
    """(latencies in s, elapsed s, errors) of ``clients`` keep-alive clients for ``seconds``;
    an answer counts as an error unless ``parse`` finds ``expect`` rows in it.

    Each client is a bare HTTP/1.1 connection (asyncio streams) that sends pre-built requests
    and reads the answer by its Content-Length (or chunks), then checks it with orjson. httpx
    cost this process 1.8-2.2 ms of CPU per request, more than either server, on the same two
    cores, so the servers were measured through the load generator's share of the CPU.
    """
    import orjson

    target = urlsplit(url)
    host, port = target.hostname or "127.0.0.1", target.port or 80
    requests = [
        (f"POST {target.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
         f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        + body
        for body in bodies
    ]
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(offset: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        i = offset
        try:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                writer.write(requests[i % len(requests)])
                status, body, close = await _read_response(reader)
                if status != 200 or len(parse(orjson.loads(body))) != expect:
                    errors += 1
                latencies.append(time.perf_counter() - t0)
                i += clients
                if close:
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(clients)))
    return latencies, time.perf_counter() - started, errors


def _run_loop(coro: Any) -> Any:
    """Run ``coro`` on uvloop when installed (a cheaper client), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, server closes) of one HTTP/1.1 response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip().lower()
    if b"content-length" in fields:
        body = await reader.readexactly(int(fields[b"content-length"]))
    else:  # chunked
        parts = []
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readline()
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    return status, body, fields.get(b"connection") == b"close"


def summarize(latencies: list[float], elapsed: float, errors: int) -> dict[str, Any]:
    """QPS and p50/p99 latency (ms) of one target's requests."""
    lat = np.asarray(latencies) * 1000
    return {"qps": len(lat) / elapsed, "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)), "requests": len(lat), "errors": errors}


def answers_of(url: str, bodies: list[bytes], parse: Callable[[Any], list[str]]
               ) -> tuple[list, dict[str, float]]:
    """One sequential pass: the top-k ids of every query (for recall), and the latency one
    client alone sees (p50/p99 ms), which is the HTTP overhead without queueing."""
    import httpx

    answers, latencies = [], []
    with httpx.Client(timeout=60) as c:
        for body in bodies:
            t0 = time.perf_counter()
            resp = c.post(url, content=body, headers={"content-type": "application/json"})
            latencies.append((time.perf_counter() - t0) * 1000)
            resp.raise_for_status()
            answers.append(parse(resp.json()))
    return answers, {"one_client_p50_ms": float(np.percentile(latencies, 50)),
                     "one_client_p99_ms": float(np.percentile(latencies, 99))}


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its descendants, from /proc (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    family, total = {pid}, 0.0
    for child, parent in sorted(parents.items()):
        if parent in family:
            family.add(child)
    for member in family:
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def interleaved_load(targets: dict[str, tuple], args: argparse.Namespace) -> dict[str, Any]:
    """Load each target in turn, ``rounds`` times, ``seconds / rounds`` each: on a shared,
    noisy machine both targets then see the same background load."""
    runs: dict[str, list] = {name: [[], 0.0, 0, 0.0, 0.0] for name in targets}
    for _ in range(args.rounds):
        for name, (url, bodies, parse, pid) in targets.items():
            cpu, mine = cpu_seconds(pid), time.process_time()
            lat, elapsed, errors = _run_loop(
                _load(url, bodies, args.seconds / args.rounds, args.clients, parse))
            acc = runs[name]
            acc[0].extend(lat)
            acc[1] += elapsed
            acc[2] += errors
            acc[3] += cpu_seconds(pid) - cpu
            acc[4] += time.process_time() - mine
    out = {}
    for name, (lat, elapsed, errors, cpu, client) in runs.items():
        out[name] = summarize(lat, elapsed, errors)
        # Server CPU per answered request: robust to the other work on a shared machine.
        out[name]["server_cpu_ms_per_request"] = 1000 * cpu / max(len(lat), 1)
        # The load generator's own CPU per request (it shares the cores with the server).
        out[name]["client_cpu_ms_per_request"] = 1000 * client / max(len(lat), 1)
    return out


# -- chroma ------------------------------------------------------------------------------------
def prepare_chroma(port: int, ids: list[str], texts: list[str], vectors: np.ndarray,
                   hnsw: dict[str, int]) -> str:
    """Load the collection into a running Chroma server; returns its query URL."""
    import chromadb

    client = chromadb.HttpClient(host="127.0.0.1", port=port)
    config = {"hnsw": {"space": "cosine", "max_neighbors": hnsw["M"],
                       "ef_construction": hnsw["ef_construction"], "ef_search": hnsw["ef_search"]}}
    col = client.get_or_create_collection(COLLECTION, configuration=config)  # type: ignore[arg-type]
    if col.count() != len(ids):
        for start in range(0, len(ids), 2000):
            col.upsert(ids=ids[start:start + 2000], documents=texts[start:start + 2000],
                       embeddings=vectors[start:start + 2000])
    return (f"http://127.0.0.1:{port}/api/v2/tenants/default_tenant/databases/default_database"
            f"/collections/{col.id}/query")


# -- reporting ---------------------------------------------------------------------------------
def exact_top(doc_vecs: np.ndarray, query_vecs: np.ndarray, ids: list[str]) -> list[list[str]]:
    scores = query_vecs @ doc_vecs.T
    top = np.argsort(-scores, axis=1)[:, :K]
    return [[ids[j] for j in row] for row in top]


def ann_recall(answers: list[list[str]], exact: list[list[str]]) -> float:
    return float(np.mean([len(set(a) & set(e)) / K for a, e in zip(answers, exact, strict=True)]))


def task_recall(answers: list[list[str]], relevant: list[list[str]]) -> float:
    return float(evaluate_run(answers, relevant, ks=(K,))[f"recall@{K}"])


def in_process(home: Path, queries: list[str], qvecs: np.ndarray) -> dict[str, Any]:
    """The same facade search (with the same query cache, or given the vector) without HTTP."""
    from embedops.api import Embedops
    from embedops.config import Workspace
    from embedops.serve.cache import EmbeddingCache
    from embedops.serve.encoders import caching, install_query_cache
    from embedops.serve.metrics import Metrics

    api = Embedops(Workspace(home))
    cache = EmbeddingCache(len(queries) + 10)
    install_query_cache(api, cache, Metrics(cache, dict))
    with caching():
        for q in queries:
            api.search(COLLECTION, q, k=K)
        lat = []
        for q in queries:
            t0 = time.perf_counter()
            api.search(COLLECTION, q, k=K)
            lat.append((time.perf_counter() - t0) * 1000)
    vlat = []
    for v in qvecs:
        t0 = time.perf_counter()
        api.search(COLLECTION, vector=v, k=K)
        vlat.append((time.perf_counter() - t0) * 1000)
    api.close()
    return {"qps_1_thread": 1000 / float(np.mean(lat)), "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)),
            "vector_qps_1_thread": 1000 / float(np.mean(vlat)),
            "vector_p50_ms": float(np.percentile(vlat, 50)),
            "vector_p99_ms": float(np.percentile(vlat, 99))}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_embedops(args: argparse.Namespace, home: Path, stack: ExitStack) -> tuple[str, int]:
    port = free_port()
    cmd = [sys.executable, "-m", "embedops.cli.main", "--home", str(home), "serve", "--port",
           str(port), "--no-auth", "--log-level", "warning", "--cache-size", "20000",
           "--workers", str(args.workers)] + (["--inline-search"] if args.inline else []) + (
               ["--no-inline-cheap-search"] if args.pool_only else [])
    proc = start(cmd, f"http://127.0.0.1:{port}/readyz", args.out / "serve-embedops.log")
    stack.callback(stop, proc)
    return f"http://127.0.0.1:{port}", proc.pid


def _start_chroma(args: argparse.Namespace, stack: ExitStack) -> tuple[int, int]:
    port = free_port()
    chroma = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    cmd = [chroma, "run", "--path", str(args.out / "serve-chroma"), "--host", "127.0.0.1",
           "--port", str(port)]
    proc = start(cmd, f"http://127.0.0.1:{port}/api/v2/heartbeat", args.out / "serve-chroma.log")
    stack.callback(stop, proc)
    return port, proc.pid


def _cached_entries(base: str) -> int:
    """``embedops_cache_entries`` of the worker that answers a new connection."""
    import httpx

    for line in httpx.get(f"{base}/metrics", timeout=60).text.splitlines():
        if line.startswith("embedops_cache_entries "):
            return int(float(line.split()[1]))
    return 0


def _warm_all(base: str, queries: list[str], args: argparse.Namespace) -> np.ndarray:
    """Query vectors from the server. Each worker has its own query cache and a connection
    goes to one worker, so with several workers: more passes, each on a new connection, until
    12 scrapes in a row on new connections (each worker's chance to be missed by all of them:
    2**-12 with two) find every query cached."""
    from embedops.serve.cache import cache_key

    vecs = embed_queries(base, queries)
    distinct = len({cache_key("", q) for q in queries})
    full = 0
    for _ in range(400 if args.workers > 1 else 0):
        if _cached_entries(base) >= distinct:
            full += 1
            if full == 12:
                break
        else:
            full = 0
            embed_queries(base, queries)
    else:
        if args.workers > 1:
            raise SystemExit("could not fill every worker's query cache")
    return vecs


def run_all(args: argparse.Namespace, ids: list[str], texts: list[str], doc_vecs: np.ndarray,
            queries: list[str], relevant: list[list[str]], hnsw: dict[str, int]) -> dict:
    """Both servers up side by side; recall passes, interleaved load, the in-process line."""
    home = args.out / "serve-ws"
    prepare_workspace(home, ids, texts, doc_vecs, hnsw)
    with ExitStack() as stack:
        base, eo_pid = _start_embedops(args, home, stack)
        qvecs = _warm_all(base, queries, args)
        chroma_port, ch_pid = _start_chroma(args, stack)
        chroma_url = prepare_chroma(chroma_port, ids, texts, doc_vecs, hnsw)
        eo = (f"{base}/v1/collections/{COLLECTION}/search",
              [json.dumps({"query": q, "k": K}).encode() for q in queries],
              lambda r: [h["id"] for h in r["hits"]], eo_pid)
        ch = (chroma_url,
              [json.dumps({"query_embeddings": [v.tolist()], "n_results": K,
                           "include": ["documents", "distances"]}).encode() for v in qvecs],
              lambda r: r["ids"][0], ch_pid)
        ev = (eo[0], [json.dumps({"vector": v.tolist(), "k": K}).encode() for v in qvecs],
              eo[2], eo_pid)
        targets = {"embedops_http": eo, "embedops_http_vector": ev, "chroma_http": ch}
        answers = {name: answers_of(*t[:3]) for name, t in targets.items()}
        stats = interleaved_load(targets, args)
    exact = exact_top(doc_vecs, qvecs, ids)
    for name, (found, alone) in answers.items():
        stats[name].update(ann_recall=ann_recall(found, exact),
                           task_recall=task_recall(found, relevant), **alone)
    local = in_process(home, queries, qvecs)
    eo_s, ch_s = stats["embedops_http"], stats["chroma_http"]
    ev_s = stats["embedops_http_vector"]
    return {
        "setup": {"docs": len(ids), "queries": len(queries), "clients": args.clients,
                  "embedops_workers": args.workers, "inline_search": args.inline,
                  "pool_only": args.pool_only,
                  "seconds_per_target": args.seconds,
                  "rounds": args.rounds, "hnsw": hnsw},
        **stats, "embedops_in_process": local,
        "ratios": {
            "qps_embedops/chroma": eo_s["qps"] / ch_s["qps"],
            "p99_embedops/chroma": eo_s["p99_ms"] / ch_s["p99_ms"],
            "qps_embedops_vector/chroma": ev_s["qps"] / ch_s["qps"],
            "p99_embedops_vector/chroma": ev_s["p99_ms"] / ch_s["p99_ms"],
            "server_cpu_per_request_embedops_vector/chroma": ev_s["server_cpu_ms_per_request"]
            / ch_s["server_cpu_ms_per_request"],
            "http_overhead_p50_ms": eo_s["p50_ms"] - local["p50_ms"],
            # Without queueing: one client alone, and server CPU beyond the facade's search.
            "http_overhead_one_client_p50_ms": eo_s["one_client_p50_ms"] - local["p50_ms"],
            "http_overhead_vector_one_client_p50_ms": ev_s["one_client_p50_ms"]
            - local["vector_p50_ms"],
            "http_overhead_server_cpu_ms_per_request": eo_s["server_cpu_ms_per_request"]
            - 1000 / local["qps_1_thread"],
            "server_cpu_per_request_embedops/chroma": eo_s["server_cpu_ms_per_request"]
            / ch_s["server_cpu_ms_per_request"],
            "in_process_cpu_ms_per_search": 1000 / local["qps_1_thread"],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--ef-search", type=int, default=64)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1, help="embedops serve --workers")
    parser.add_argument("--rounds", type=int, default=4, help="alternations of the targets")
    parser.add_argument("--inline", action="store_true", help="embedops serve --inline-search")
    parser.add_argument("--pool-only", action="store_true",
                        help="embedops serve --no-inline-cheap-search (every search in the pool)")
    parser.add_argument("--embeddings", action="store_true",
                        help="the embeddings run instead (bench/serve_embeddings.py): "
                        "/v1/embeddings vs sentence-transformers + FastAPI, and cold start")
    parser.add_argument("--batch", type=int, default=8, help="texts per embeddings request")
    parser.add_argument("--cold-starts", type=int, default=3,
                        help="cold starts measured per server in the embeddings run (0: none)")
    args = parser.parse_args()
    if args.embeddings:
        from serve_embeddings import run

        print(json.dumps(run(args), indent=2))
        return
    ids, texts, queries, relevant = read_data(args.data)
    queries, relevant = queries[:args.queries], relevant[:args.queries]
    doc_vecs, _ = minilm_vectors(args.data, args.out)
    hnsw = {"M": 16, "ef_construction": 100, "ef_search": args.ef_search}
    results = run_all(args, ids, texts, doc_vecs, queries, relevant, hnsw)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
