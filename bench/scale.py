"""Past one machine, measured in one run: batch embedding in process vs on Ray (1 and 2 workers),
FAISS HNSW in process vs Milvus, and the per-core figures of docs/scaling.md's capacity model.

* (a) ``embedops ingest`` of the first ``--docs`` reverse-dictionary documents with MiniLM
  (all-MiniLM-L6-v2, one torch thread): local vs ``RayExecutor`` with 1 and 2 workers (actors,
  one CPU each) on a local Ray cluster of 2 CPUs started once (its start is not counted; each
  run's actor start and model load are). docs/s, and the ratio of 2 workers to 1. The catalogs
  of the three runs are compared (same items; the largest vector difference is printed).
* (b) FAISS HNSW (embedops ``hnsw``, in process) vs Milvus (embedops ``milvus``, HNSW with the
  same M / efConstruction / ef, served by milvus-lite in process over gRPC) on MiniLM vectors:
  docs-20k when ``bench/out/`` holds them (``_minilm_cache``), else the documents (a) stored;
  one query per call, as a server searches; QPS and recall@10 against exact search. Build
  seconds too.
* (c) index memory per vector of each kind (embedops' ``memory_bytes``), MiniLM query encoding
  per core, and the capacity model for 1M, 100M and 1B vectors (printed as Markdown).

Usage: ``python bench/scale.py [--data ../shared/data] [--docs 2000] [--queries 300]``.
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("EMBEDOPS_QUIET", "1")

from _minilm_cache import minilm_vectors  # noqa: E402

from embedops.api import Embedops  # noqa: E402
from embedops.config import Workspace  # noqa: E402
from embedops.index import make_index  # noqa: E402

K = 10
HNSW = {"M": 16, "ef_construction": 128, "ef_search": 64}
SIZES = {"1M": 10**6, "100M": 10**8, "1B": 10**9}


def _docs(data: Path, n: int, out: Path) -> Path:
    path = out / "docs.jsonl"
    with lzma.open(data / "revdict" / "docs-20k.jsonl.xz", "rt", encoding="utf-8") as src, \
            path.open("w", encoding="utf-8") as dst:
        for i, line in enumerate(src):
            if i >= n:
                break
            row = json.loads(line)
            dst.write(json.dumps({"id": row["id"], "text": row["text"]}) + "\n")
    return path


def _workspace(root: Path, name: str, model_src: Workspace | None) -> Workspace:
    import shutil

    ws = Workspace(root / name).ensure()
    if model_src is None:
        with Embedops(ws) as eo:
            eo.models.import_transformer("minilm", "minilm")
    else:
        shutil.copytree(model_src.models_dir, ws.models_dir, dirs_exist_ok=True)
    with Embedops(ws) as eo:
        eo.collections.create("docs", model="minilm")
    return ws


def ingest_runs(data: Path, n: int, root: Path) -> tuple[dict[str, Any], Workspace]:
    """(a): docs/s of local, Ray 1-worker and Ray 2-worker ingests of the same file; also the
    workspace of the local run (MiniLM and the stored vectors)."""
    import ray
    import torch

    from embedops.engine.executors import RayExecutor

    torch.set_num_threads(1)
    source = _docs(data, n, root)
    first = _workspace(root, "local", None)
    results: dict[str, Any] = {}
    states = {}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        for name, executor in (("local", None), ("ray-1", RayExecutor(workers=1)),
                               ("ray-2", RayExecutor(workers=2))):
            ws = first if name == "local" else _workspace(root, name, first)
            with Embedops(ws) as eo:
                started = time.perf_counter()
                report = eo.ingest("docs", source, batch_size=256, quiet=True,
                                   executor=executor)
                seconds = time.perf_counter() - started
                ids, vectors = eo.load_vectors("docs", "minilm")
                states[name] = (sorted(ids), np.asarray(vectors)[np.argsort(ids)])
            results[name] = {"docs": report.embedded, "seconds": round(seconds, 2),
                             "docs_per_s": round(report.embedded / seconds, 1)}
            print(f"  ingest {name:6s} {report.embedded} docs in {seconds:6.1f} s = "
                  f"{report.embedded / seconds:7.1f} docs/s", flush=True)
    finally:
        ray.shutdown()
    for name in ("ray-1", "ray-2"):
        assert states[name][0] == states["local"][0], f"{name} stored other items"
        diff = np.abs(states[name][1] - states["local"][1]).max()
        results[name]["max_abs_diff_vs_local"] = float(diff)
    results["ratio_2_to_1"] = round(results["ray-2"]["docs_per_s"]
                                    / results["ray-1"]["docs_per_s"], 2)
    return results, first


def _recall(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.mean([len(set(g) & set(w)) / K for g, w in zip(got, want, strict=True)]))


def index_runs(docs: np.ndarray, queries: np.ndarray, root: Path) -> dict[str, Any]:
    """(b): FAISS HNSW in process vs Milvus (milvus-lite) with the same HNSW settings."""
    import faiss

    from embedops.index.milvus_client import forget_connections

    faiss.omp_set_num_threads(1)
    want = np.argsort(-(queries @ docs.T), axis=1)[:, :K]
    ids = np.arange(len(docs), dtype=np.int64)
    os.environ["EMBEDOPS_MILVUS_URI"] = str(root / "milvus.db")
    out: dict[str, Any] = {}
    specs = (("faiss-hnsw", "hnsw", HNSW),
             ("milvus-hnsw", "milvus", {"index_type": "HNSW", **HNSW}))
    for name, kind, params in specs:
        index = make_index(kind, docs.shape[1], "cosine", params)
        started = time.perf_counter()
        index.build(docs, ids)
        build = time.perf_counter() - started
        index.search(queries[:5], K)  # warm
        found = np.empty((len(queries), K), np.int64)
        started = time.perf_counter()
        for row, q in enumerate(queries):
            found[row] = index.search(q[None, :], K)[0][0]
        seconds = time.perf_counter() - started
        out[name] = {"build_s": round(build, 1), "qps": round(len(queries) / seconds, 1),
                     "p50_ms": round(1000 * seconds / len(queries), 2),
                     "recall@10": round(_recall(found, want), 3)}
        print(f"  search {name:11s} build {build:6.1f} s, {len(queries) / seconds:8.1f} QPS, "
              f"recall@10 {out[name]['recall@10']:.3f}", flush=True)
    forget_connections()
    out["qps_ratio_faiss_to_milvus"] = round(out["faiss-hnsw"]["qps"]
                                             / out["milvus-hnsw"]["qps"], 1)
    return out


def memory_per_vector(docs: np.ndarray) -> dict[str, float]:
    """(c): bytes per vector of each kind at this dim (IVF codebooks amortised over the set)."""
    out = {}
    ids = np.arange(len(docs), dtype=np.int64)
    for kind, params in (("flat", None), ("hnsw", {"M": 16}), ("sq8", None),
                         ("ivfpq", None)):
        index = make_index(kind, docs.shape[1], "cosine", params)
        index.build(docs, ids)
        out[kind] = round(index.memory_bytes() / len(docs), 1)
    out["milvus-hnsw (server, est.)"] = float(4 * docs.shape[1] + 8 + 8 * 16)
    return out


def encode_ms(ws: Workspace, queries: list[str]) -> float:
    """MiniLM query encoding, one thread, one query per call (what a search pays)."""
    import torch

    from embedops.models.loader import load_encoder
    from embedops.models.registry import Registry

    torch.set_num_threads(1)
    registry = Registry(ws)
    encoder = load_encoder(registry.get("minilm"), registry)
    encoder.encode(queries[:5])
    started = time.perf_counter()
    for text in queries:
        encoder.encode([text])
    return 1000 * (time.perf_counter() - started) / len(queries)


def vectors(ws: Workspace, data: Path, queries: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(docs, queries) unit-length MiniLM vectors for (b)."""
    if (HERE / "out" / "minilm-docs20k.npy").exists():
        docs, cached = minilm_vectors(data, HERE / "out")
        return docs, cached[:len(queries)]
    with Embedops(ws) as eo:
        docs = np.asarray(eo.load_vectors("docs", "minilm")[1], np.float32)
        q = np.asarray(eo.embed(queries, "minilm"), np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return np.ascontiguousarray(docs), np.ascontiguousarray(q)


def capacity(ingest: dict[str, Any], index: dict[str, Any], memory: dict[str, float],
             enc_ms: float) -> str:
    """The capacity model as Markdown (per-core figures scaled linearly; see docs/scaling.md)."""
    per_worker = ingest["ray-1"]["docs_per_s"] * 3600
    search_ms = index["faiss-hnsw"]["p50_ms"]
    qps_core = 1000 / (enc_ms + search_ms)
    lines = [f"docs/hour per Ray worker (1 CPU, MiniLM): {per_worker:,.0f}",
             f"QPS per serving core (MiniLM encode {enc_ms:.1f} ms + HNSW {search_ms:.2f} ms): "
             f"{qps_core:,.0f}; a 4-core replica: {4 * qps_core:,.0f}", "",
             "| vectors | " + " | ".join(memory) + " | embed once, 16 workers |",
             "|---|" + "---|" * (len(memory) + 1)]
    for label, n in SIZES.items():
        cells = [f"{n * b / 2**30:,.1f} GiB" for b in memory.values()]
        hours = n / (16 * per_worker)
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {hours:,.1f} h |")
    return "\n".join(lines)


def main() -> None:
    """Run (a), (b), (c) and print the figures and the capacity model."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    print(f"# bench/scale.py — {date.today()} — {platform.node()} "
          f"({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})", flush=True)
    with open(args.data / "revdict" / "queries-dev.jsonl", encoding="utf-8") as fh:
        texts = [json.loads(line)["query"] for line in fh][:args.queries]
    with tempfile.TemporaryDirectory(prefix="embedops-scale-") as tmp:
        root = Path(tmp)
        print("(a) ingest with MiniLM", flush=True)
        ingest, ws = ingest_runs(args.data, args.docs, root)
        enc = encode_ms(ws, texts[:100])
        docs, queries = vectors(ws, args.data, texts)
        print(f"(b) search: {len(docs)} docs, {len(queries)} queries", flush=True)
        index = index_runs(docs, queries, root)
        memory = memory_per_vector(docs)
    print(json.dumps({"ingest": ingest, "index": index, "memory_bytes_per_vector": memory,
                      "minilm_query_encode_ms": round(enc, 2)}, indent=2))
    print(capacity(ingest, index, memory, enc))


if __name__ == "__main__":
    main()
