"""Index speed, recall and memory: embedops backends vs raw FAISS, hnswlib and Chroma.

MiniLM (all-MiniLM-L6-v2) vectors of the reverse-dictionary docs-20k and its 1,000 dev queries,
encoded once and cached under ``bench/out/``. Everything runs single-threaded
(``faiss.omp_set_num_threads(1)``), side by side in one process, and prints ratios:

Speeds are queries per CPU-second of this process (see ``_timed``).

* (b) QPS and recall@10 (against exact search) of each embedops backend vs raw FAISS built with
  the same parameters (quantized backends: FAISS ``IndexRefineFlat`` with the same candidate
  count as embedops' rescoring) and vs hnswlib; batch (all queries in one call) and one query
  per call (what a server does);
* (c) index memory per vector and its ratio to flat;
* (d) Chroma (PersistentClient, HNSW with the same M/ef): ingest time and QPS at equal recall.

Usage: ``python bench/index_speed.py [--data ../shared/data] [--skip-chroma]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _minilm_cache import minilm_vectors  # noqa: E402

from embedops.index import make_index  # noqa: E402
from embedops.index.ivf import auto_nlist, auto_nprobe  # noqa: E402
from embedops.index.rescore import MIN_CANDIDATES  # noqa: E402
from embedops.index.snapshot import SnapshotStore  # noqa: E402

K = 10
HNSW = {"M": 32, "ef_construction": 100, "ef_search": 64}


def recall(got: np.ndarray, want: np.ndarray) -> float:
    """Mean share of the exact top-k found."""
    return float(np.mean([len(set(g) & set(w)) / len(w) for g, w in zip(got, want, strict=True)]))


def qps(search: Callable[[np.ndarray], Any], queries: np.ndarray, single: int) -> tuple[float, ...]:
    """(batch, one-query-per-call) queries per CPU-second, one round."""
    batch = _timed(lambda: search(queries))
    one = queries[:single]
    loop = _timed(lambda: [search(one[i : i + 1]) for i in range(len(one))])
    return len(queries) / batch, len(one) / loop


def best_qps(searches: list[Callable], queries: np.ndarray, single: int) -> list[tuple]:
    """Best of three interleaved rounds for each search function, so that a burst of load from
    the machine's other work hits every contestant alike."""
    rounds = [[qps(fn, queries, single) for fn in searches] for _ in range(3)]
    return [tuple(max(r[i][j] for r in rounds) for j in range(2)) for i in range(len(searches))]


def _timed(fn: Callable[[], Any]) -> float:
    """CPU seconds of ``fn`` (all threads of this process): on a machine shared with other
    work, wall time measures the neighbours; CPU time measures the code."""
    start = time.process_time()
    fn()
    return time.process_time() - start


# --- raw FAISS with the same parameters as embedops' defaults --------------------------------
def raw_faiss(kind: str, docs: np.ndarray) -> Any:
    """The FAISS index embedops' ``kind`` wraps, built directly (inner product, normalized)."""
    import faiss

    dim, n, ip = docs.shape[1], len(docs), faiss.METRIC_INNER_PRODUCT
    nlist = auto_nlist(n)
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW["M"], ip)
        index.hnsw.efConstruction, index.hnsw.efSearch = HNSW["ef_construction"], HNSW["ef_search"]
    elif kind == "ivf":
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, ip)
    elif kind == "ivfpq":
        index = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, nlist, dim // 8, 8, ip)
    else:
        index = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit, ip)
    if kind in ("ivf", "ivfpq"):
        index.nprobe = auto_nprobe(nlist)
    if kind in ("ivfpq", "sq8"):  # the same candidate count as embedops' exact rescoring
        factor = 8 if kind == "ivfpq" else 4
        index = faiss.IndexRefineFlat(index)
        index.k_factor = max(K * factor, MIN_CANDIDATES) / K
    index.train(docs)
    index.add(docs)
    return index


def run_backends(docs: np.ndarray, queries: np.ndarray, truth: np.ndarray, single: int) -> list:
    """(b) and (c): every embedops backend next to raw FAISS."""
    import faiss

    rows = []
    flat_bytes = None
    for kind in ("flat", "hnsw", "ivf", "ivfpq", "sq8"):
        params = HNSW if kind == "hnsw" else None
        ours = make_index(kind, docs.shape[1], "cosine", params)
        build = _timed(lambda ours=ours: ours.build(docs, np.arange(len(docs))))
        raw_box: list[Any] = []
        raw_build = _timed(lambda kind=kind, box=raw_box: box.append(raw_faiss(kind, docs)))
        raw = raw_box[0]
        ours_q, raw_q = best_qps(
            [lambda q, ours=ours: ours.search(q, K), lambda q, raw=raw: raw.search(q, K)],
            queries,
            single,
        )
        mem = ours.memory_bytes()
        flat_bytes = flat_bytes or mem
        rows.append(
            {
                "kind": kind,
                "build_s": build,
                "raw_build_s": raw_build,
                "recall": recall(ours.search(queries, K)[0], truth),
                "raw_recall": recall(raw.search(queries, K)[1], truth),
                "qps_batch": ours_q[0],
                "raw_qps_batch": raw_q[0],
                "qps_single": ours_q[1],
                "raw_qps_single": raw_q[1],
                "bytes_per_vector": mem / len(docs),
                "memory_vs_flat": mem / flat_bytes,
                "raw_bytes_per_vector": len(faiss.serialize_index(raw)) / len(docs),
            }
        )
        print(_fmt_backend(rows[-1]), flush=True)
    return rows


def _fmt_backend(r: dict) -> str:
    return (
        f"{r['kind']:6} recall {r['recall']:.3f} (faiss {r['raw_recall']:.3f})  "
        f"batch {r['qps_batch']:8.0f} q/s = {r['qps_batch'] / r['raw_qps_batch']:.2f}x faiss  "
        f"single {r['qps_single']:7.0f} q/s = {r['qps_single'] / r['raw_qps_single']:.2f}x faiss  "
        f"{r['bytes_per_vector']:6.0f} B/vec = {r['memory_vs_flat']:.3f}x flat  "
        f"build {r['build_s']:.2f}s (faiss {r['raw_build_s']:.2f}s)"
    )


# --- hnswlib and Chroma ------------------------------------------------------------------------
def run_hnswlib(docs: np.ndarray, queries: np.ndarray, truth: np.ndarray, single: int) -> dict:
    """hnswlib with the same M / ef as embedops' hnsw."""
    import hnswlib

    index = hnswlib.Index(space="ip", dim=docs.shape[1])
    index.set_num_threads(1)
    build = _timed(
        lambda: (
            index.init_index(len(docs), ef_construction=HNSW["ef_construction"], M=HNSW["M"]),
            index.add_items(docs, np.arange(len(docs))),
        )
    )
    index.set_ef(HNSW["ef_search"])
    batch, one = best_qps([lambda q: index.knn_query(q, K)], queries, single)[0]
    got = index.knn_query(queries, K)[0].astype(np.int64)
    return {"build_s": build, "recall": recall(got, truth), "qps_batch": batch, "qps_single": one}


def run_chroma(docs: np.ndarray, queries: np.ndarray, truth: np.ndarray, single: int) -> dict:
    """Chroma PersistentClient in a temp folder, vectors passed in, HNSW with our M / ef."""
    import chromadb

    folder = Path(tempfile.mkdtemp(prefix="chroma-bench-"))
    try:
        client = chromadb.PersistentClient(path=str(folder))
        hnsw = {
            "space": "ip",
            "max_neighbors": HNSW["M"],
            "num_threads": 1,
            "ef_construction": HNSW["ef_construction"],
            "ef_search": HNSW["ef_search"],
        }
        col = client.create_collection(
            "bench-index", configuration={"hnsw": hnsw}, embedding_function=None
        )
        step = min(5000, client.get_max_batch_size())
        start, cpu = time.perf_counter(), time.process_time()
        for lo in range(0, len(docs), step):
            ids = [str(i) for i in range(lo, min(lo + step, len(docs)))]
            col.add(ids=ids, embeddings=docs[lo : lo + step])
        ingest, ingest_wall = time.process_time() - cpu, time.perf_counter() - start

        def search(q: np.ndarray) -> list:
            return col.query(query_embeddings=q, n_results=K, include=["distances"])["ids"]

        search(queries[:1])  # Chroma loads its segment lazily on the first query
        batch, one = best_qps([search], queries, single)[0]
        got = np.array([[int(i) for i in row] for row in search(queries)], dtype=np.int64)
        return {
            "ingest_s": ingest,
            "ingest_wall_s": ingest_wall,
            "recall": recall(got, truth),
            "qps_batch": batch,
            "qps_single": one,
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def embedops_ingest(docs: np.ndarray) -> float:
    """embedops' equivalent of Chroma's ingest: build hnsw and publish a checksummed snapshot."""
    folder = Path(tempfile.mkdtemp(prefix="embedops-bench-"))
    try:

        def ingest() -> None:
            index = make_index("hnsw", docs.shape[1], "ip", HNSW)
            index.build(docs, np.arange(len(docs)))
            keys = [str(i) for i in range(len(docs))]
            meta = {"collection": "bench", "model_version": "m@1"}
            SnapshotStore(folder).publish(index, keys, meta)

        return _timed(ingest)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- driver --------------------------------------------------------------------------------------
def load(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """MiniLM vectors (cached), or clustered synthetic ones for a quick check of the script."""
    if args.synthetic:
        rng = np.random.default_rng(0)
        centers = rng.standard_normal((200, 384)).astype(np.float32)
        docs = centers[rng.integers(0, 200, args.synthetic)] + rng.standard_normal(
            (args.synthetic, 384)
        ).astype(np.float32)
        queries = docs[rng.integers(0, len(docs), 1000)] + 0.5 * rng.standard_normal((1000, 384))
        docs, queries = docs.astype(np.float32), queries.astype(np.float32)
    else:
        docs, queries = minilm_vectors(Path(args.data), Path(args.out))
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return np.ascontiguousarray(docs), np.ascontiguousarray(queries)


def main() -> None:
    """Run every comparison, print ratios, write ``bench/out/index_speed.json``."""
    import faiss

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data"))
    parser.add_argument("--out", default=str(HERE / "out"))
    parser.add_argument("--single", type=int, default=500, help="queries timed one per call")
    parser.add_argument("--skip-chroma", action="store_true")
    parser.add_argument("--synthetic", type=int, default=0, help="N clustered vectors instead")
    args = parser.parse_args()
    faiss.omp_set_num_threads(1)
    docs, queries = load(args)
    exact = faiss.IndexFlatIP(docs.shape[1])
    exact.add(docs)
    truth = exact.search(queries, K)[1]
    print(f"{len(docs)} docs, {len(queries)} queries, dim {docs.shape[1]}, k={K}, 1 thread")
    report: dict[str, Any] = {"backends": run_backends(docs, queries, truth, args.single)}
    hn = report["hnswlib"] = run_hnswlib(docs, queries, truth, args.single)
    ours = next(r for r in report["backends"] if r["kind"] == "hnsw")
    print(
        f"hnswlib recall {hn['recall']:.3f}  embedops hnsw vs hnswlib: batch "
        f"{ours['qps_batch'] / hn['qps_batch']:.2f}x, single "
        f"{ours['qps_single'] / hn['qps_single']:.2f}x",
        flush=True,
    )
    if not args.skip_chroma:
        ch = report["chroma"] = run_chroma(docs, queries, truth, args.single)
        ingest = report["embedops_ingest_s"] = embedops_ingest(docs)
        print(
            f"chroma recall {ch['recall']:.3f}  ingest {ch['ingest_s']:.2f}s vs embedops "
            f"{ingest:.2f}s ({ch['ingest_s'] / ingest:.2f}x faster)  embedops hnsw vs chroma: "
            f"batch {ours['qps_batch'] / ch['qps_batch']:.2f}x, "
            f"single {ours['qps_single'] / ch['qps_single']:.2f}x"
        )
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "index_speed.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
