"""Embeddings serving benchmark: embedops ``/v1/embeddings`` vs a minimal reference server
(sentence-transformers + FastAPI, written below) on the same MiniLM, in one run; and cold start.

Both servers run as their own processes on 127.0.0.1 without auth; this process is the load
generator (``serve._load``: bare keep-alive HTTP/1.1 clients). Every request carries
``--batch`` texts of the revdict docs (dictionary definitions), in OpenAI's request shape; the
answers are parsed and their row count checked. embedops runs with its query cache off
(``--cache-size 0``), so no text is answered from memory; it serves MiniLM with its default
backend (the fastest whose files exist: ONNX int8), the reference with torch fp32, as
``SentenceTransformer(...).encode`` does out of the box. The mean cosine between the two
servers' vectors of the same texts is printed, so the price of int8 is on the same page.

Measured at 1, 8 and 32 concurrent clients, the targets interleaved ``--rounds`` times: texts/s,
p50/p99 latency per request, server CPU per text. Cold start: process start to the first
answered ``/v1/embeddings`` request, for a static model (word2vec trained here on the first
lines of the shared corpus) and for MiniLM, and for the reference server (median of
``--cold-starts`` runs).

    .venv/bin/python bench/serve.py --embeddings [--seconds 30] [--batch 8] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import lzma
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import serve as base

LEVELS = (1, 8, 32)

REFERENCE_SERVER = '''
import os, sys
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import orjson, uvicorn
from fastapi import FastAPI, Response
from sentence_transformers import SentenceTransformer

model = SentenceTransformer(sys.argv[1], device="cpu")
app = FastAPI()


@app.post("/v1/embeddings")
def embeddings(body: dict) -> Response:
    texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
    vectors = model.encode(texts, batch_size=32, normalize_embeddings=True)
    tokens = int(model.tokenize(texts)["attention_mask"].sum())
    data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
    answer = {"object": "list", "data": data, "model": body["model"],
              "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
    return Response(orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY),
                    media_type="application/json")


uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
'''


def read_texts(data: Path) -> list[str]:
    """The revdict docs-20k texts (median 34 tokens, 8% at MiniLM's 256-token cut), without
    the 18 (0.1%) longer than ``embedops serve``'s default per-text limit (``max_text_chars``,
    8,192 characters), which it refuses with a 413 while the reference encodes them: both
    servers get the same work."""
    from embedops.serve.settings import ServeSettings

    limit = ServeSettings().max_text_chars
    with lzma.open(data / "revdict" / "docs-20k.jsonl.xz", "rt", encoding="utf-8") as fh:
        texts = [json.loads(line)["text"] for line in fh if line.strip()]
    return [text for text in texts if len(text) <= limit]


def prepare(home: Path, data: Path, out: Path) -> None:
    """A workspace with MiniLM (and its ONNX files) and a static word2vec model ``w2v``."""
    from embedops.config import Workspace
    from embedops.engine import Embedops
    from embedops.engine.options import TrainConfig

    marker = home / "bench-emb-ready.json"
    if marker.exists():
        return
    corpus = out / "emb-corpus.txt"
    with lzma.open(data / "corpus-en-13m.txt.xz", "rt", encoding="utf-8") as fh, \
            corpus.open("w", encoding="utf-8") as dest:
        for n, line in enumerate(fh):
            if n == 300_000:
                break
            dest.write(line)
    with Embedops(Workspace(home)) as api:
        api.models.import_transformer("minilm")
        api.models.train(corpus, "w2v", TrainConfig(dim=128, epochs=2, redact=()))
    marker.write_text("{}")


def _bodies(texts: list[str], batch: int, model: str) -> list[bytes]:
    return [json.dumps({"model": model, "input": texts[i:i + batch]}).encode()
            for i in range(0, len(texts) - batch + 1, batch)]


def _start_embedops(home: Path, out: Path, stack: ExitStack) -> tuple[str, int]:
    port = base.free_port()
    cmd = [sys.executable, "-m", "embedops.cli.main", "--home", str(home), "serve", "--port",
           str(port), "--no-auth", "--log-level", "warning", "--cache-size", "0"]
    proc = base.start(cmd, f"http://127.0.0.1:{port}/readyz", out / "serve-emb-embedops.log")
    stack.callback(base.stop, proc)
    url = f"http://127.0.0.1:{port}/v1/embeddings"
    _first_answer(url, proc, "minilm")  # the model loads on its first request
    return url, proc.pid


def _reference_cmd(out: Path, port: int) -> list[str]:
    from embedops.models.transformer import minilm_path

    script = out / "reference_server.py"
    script.write_text(REFERENCE_SERVER)
    return [sys.executable, str(script), str(minilm_path()), str(port)]


def _start_reference(out: Path, stack: ExitStack) -> tuple[str, int]:
    port = base.free_port()
    url = f"http://127.0.0.1:{port}/v1/embeddings"
    proc = subprocess.Popen(_reference_cmd(out, port), stdout=subprocess.DEVNULL,
                            stderr=open(out / "serve-emb-reference.log", "wb"))  # noqa: SIM115
    stack.callback(base.stop, proc)
    _first_answer(url, proc, "minilm")
    return url, proc.pid


def _first_answer(url: str, proc: subprocess.Popen, model: str) -> None:
    """Poll ``url`` with one text until it answers 200 (the server is up, the model loaded)."""
    import httpx

    body = {"model": model, "input": ["a first request"]}
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early: {proc.args}")
        try:
            if httpx.post(url, json=body, timeout=120).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.02)
    raise SystemExit(f"no answer from {url}")


def cold_start(cmd: list[str], url: str, model: str, log: Path) -> float:
    """Seconds from process start to the first answered embeddings request."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                            stderr=open(log, "wb"))  # noqa: SIM115
    try:
        _first_answer(url, proc, model)
        return time.perf_counter() - started
    finally:
        base.stop(proc)


def cold_starts(home: Path, out: Path, repeats: int = 3) -> dict[str, float]:
    """Median cold start of embedops with a static model and with MiniLM, and of the
    reference server."""
    runs: dict[str, list[float]] = {"embedops_static_w2v": [], "embedops_minilm": [],
                                    "reference_minilm": []}
    for _ in range(repeats):
        for name, model in (("embedops_static_w2v", "w2v"), ("embedops_minilm", "minilm")):
            port = base.free_port()
            cmd = [sys.executable, "-m", "embedops.cli.main", "--home", str(home), "serve",
                   "--port", str(port), "--no-auth", "--log-level", "warning"]
            runs[name].append(cold_start(cmd, f"http://127.0.0.1:{port}/v1/embeddings", model,
                                         out / f"cold-{name}.log"))
        port = base.free_port()
        runs["reference_minilm"].append(cold_start(
            _reference_cmd(out, port), f"http://127.0.0.1:{port}/v1/embeddings", "minilm",
            out / "cold-reference.log"))
    return {f"{name}_s": statistics.median(values) for name, values in runs.items()}


def agreement(urls: dict[str, str], texts: list[str]) -> dict[str, float]:
    """Cosine between the two servers' vectors of the same texts (one pass, 256 texts)."""
    import httpx

    got = {}
    for name, url in urls.items():
        rows = []
        for i in range(0, len(texts), 32):
            resp = httpx.post(url, json={"model": "minilm", "input": texts[i:i + 32]},
                              timeout=120)
            resp.raise_for_status()
            rows += [d["embedding"] for d in resp.json()["data"]]
        got[name] = np.asarray(rows, dtype=np.float64)
    a, b = got["embedops"], got["reference"]
    cos = (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {"mean_cosine": float(cos.mean()), "min_cosine": float(cos.min())}


def _load_level(targets: dict[str, tuple[str, list[bytes], int]], clients: int,
                args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Both targets at ``clients`` concurrent clients, interleaved ``args.rounds`` times."""
    acc: dict[str, list[Any]] = {name: [[], 0.0, 0, 0.0] for name in targets}
    for _ in range(args.rounds):
        for name, (url, bodies, pid) in targets.items():
            cpu = base.cpu_seconds(pid)
            lat, elapsed, errors = base._run_loop(base._load(
                url, bodies, args.seconds / args.rounds, clients, lambda r: r["data"],
                expect=args.batch))
            acc[name][0] += lat
            acc[name][1] += elapsed
            acc[name][2] += errors
            acc[name][3] += base.cpu_seconds(pid) - cpu
    out = {}
    for name, (lat, elapsed, errors, cpu) in acc.items():
        stats = base.summarize(lat, elapsed, errors)
        texts = len(lat) * args.batch
        out[name] = {"texts_per_s": texts / elapsed, "p50_ms": stats["p50_ms"],
                     "p99_ms": stats["p99_ms"], "requests": len(lat), "errors": errors,
                     "server_cpu_ms_per_text": 1000 * cpu / max(texts, 1)}
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The throughput levels, the agreement check and the cold starts (see the module doc)."""
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    home = out / "serve-emb-ws"
    prepare(home, args.data, out)
    texts = read_texts(args.data)
    bodies = _bodies(texts, args.batch, "minilm")
    results: dict[str, Any] = {"setup": {"texts_per_request": args.batch,
                                         "seconds_per_target_and_level": args.seconds,
                                         "rounds": args.rounds, "levels": list(LEVELS)}}
    with ExitStack() as stack:
        eo_url, eo_pid = _start_embedops(home, out, stack)
        ref_url, ref_pid = _start_reference(out, stack)
        results["agreement"] = agreement({"embedops": eo_url, "reference": ref_url}, texts[:256])
        targets = {"embedops": (eo_url, bodies, eo_pid), "reference": (ref_url, bodies, ref_pid)}
        for clients in LEVELS:
            level = _load_level(targets, clients, args)
            eo, ref = level["embedops"], level["reference"]
            level["ratios"] = {"texts_per_s_embedops/reference": eo["texts_per_s"]
                               / ref["texts_per_s"],
                               "p99_embedops/reference": eo["p99_ms"] / ref["p99_ms"]}
            results[f"clients_{clients}"] = level
            print(json.dumps({f"clients_{clients}": level}), file=sys.stderr, flush=True)
    if args.cold_starts:
        results["cold_start"] = cold_starts(home, out, args.cold_starts)
    return results
