"""Transformer encoding speed and quality: embedops backends vs plain sentence-transformers.

One run, side by side, on real text (revdict Webster definitions and WordNet glosses):

* speed: sentences/s (and per core) of ``SentenceTransformer.encode`` (fp32 torch, batch 32: the
  anchor) and of each embedops backend (the default: OpenVINO running the QDQ int8 copy, one
  single-threaded batch per core), timed chunk by chunk in turn so that load from other
  processes hits all of them alike; the ratio to the anchor;
* fidelity: mean and minimum cosine of each backend's vectors to the anchor's fp32 vectors;
* batch invariance: the minimum cosine of a text's vector to itself encoded alone, in batches of
  32 and of 256 among different neighbours;
* retrieval: revdict recall@10 / MRR@10 (dev queries over docs-20k, exact inner product),
  metrics from ``embedops.evaluate.retrieval``;
* ``--quant``: the int8 contestants (dynamic scales per batch or per text, static calibrated
  scales with and without smoothing, 7- or 8-bit weights) built from the same fp32 file.

It also reports how long ``import_transformer('minilm')`` took and the version folder's size.

    .venv/bin/python bench/encode.py [--data ../shared/data] [--docs 2000] [--glosses 2000]
        [--no-recall] [--no-speed] [--quant] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from embedops.config import Workspace  # noqa: E402
from embedops.evaluate.retrieval import evaluate_run  # noqa: E402
from embedops.models.registry import Registry  # noqa: E402
from embedops.models.transformer import (  # noqa: E402
    TransformerEncoder,
    import_transformer,
    minilm_path,
)

EncodeFn = Callable[[list[str]], np.ndarray]
#: (texts, batch size) -> vectors: how every contestant is called.
BatchFn = Callable[[list[str], int], np.ndarray]
CHUNK = 256


def read_jsonl_xz(path: Path, field: str, limit: int | None = None) -> list[Any]:
    """Values of ``field`` in the first ``limit`` rows of a .jsonl(.xz) file."""
    opener = lzma.open if path.suffix == ".xz" else open
    out: list[Any] = []
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                out.append(json.loads(line)[field])
                if limit and len(out) >= limit:
                    break
    return out


def sample(values: list[str], n: int, seed: int = 0) -> list[str]:
    """``n`` values drawn at random (fixed seed) so lengths are representative."""
    idx = np.random.default_rng(seed).choice(len(values), size=min(n, len(values)), replace=False)
    return [values[i] for i in sorted(idx)]


def timed_side_by_side(
    systems: dict[str, EncodeFn], texts: list[str]
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Seconds and vectors per system, running each chunk through every system in turn; the
    order rotates from chunk to chunk, so no system always runs right after the same one."""
    seconds = dict.fromkeys(systems, 0.0)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in systems}
    names = list(systems)
    for i, start in enumerate(range(0, len(texts), CHUNK)):
        chunk = texts[start : start + CHUNK]
        for name in names[i % len(names):] + names[: i % len(names)]:
            fn = systems[name]
            began = time.perf_counter()
            parts[name].append(fn(chunk))
            seconds[name] += time.perf_counter() - began
    return seconds, {name: np.vstack(p) for name, p in parts.items()}


def batch_invariance(fn: BatchFn, probe: list[str], others: list[str]) -> float:
    """Least cosine of a ``probe`` text to itself across: alone, in a batch of 32 (among 96
    other texts) and in a batch of 256 (among 224 others), neighbours shuffled."""
    runs = [np.vstack([fn([t], 1) for t in probe])]
    for size, company, seed in ((32, others[:96], 1), (256, others[96:320], 2)):
        texts = probe + company
        order = np.random.default_rng(seed).permutation(len(texts))
        vectors = fn([texts[i] for i in order], size)
        runs.append(vectors[np.argsort(order)][: len(probe)])
    return float(min(np.min(np.sum(a * b, axis=1)) for i, a in enumerate(runs)
                     for b in runs[i + 1 :]))


def speed_table(
    label: str, systems: dict[str, tuple[BatchFn, int]], texts: list[str], anchor: str,
    invariance: dict[str, float], warm: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Print sentences/s, ratio, cosine to the anchor and batch invariance for every system.

    Every system first encodes 32 of the texts (first-call allocations, lazy initialisation);
    with ``warm`` (other texts of the same kind, none of them timed) it also encodes those, in
    chunks as timed, so the timing is of a warmed-up encoder: OpenVINO prepares its kernels
    for each new input shape once (10-20 ms), which a long-running encoder has paid."""
    plain = {name: _at(fn, size) for name, (fn, size) in systems.items()}
    for fn in plain.values():
        fn(texts[:32])  # warm-up: first-call allocations and lazy initialisation
        for start in range(0, len(warm or ()), CHUNK):
            fn((warm or [])[start : start + CHUNK])
    seconds, vectors = timed_side_by_side(plain, texts)
    base = vectors[anchor]
    cores = _cores()
    state = f"warmed on {len(warm)} other texts" if warm else "cold: 32 texts of warm-up"
    print(f"\n## speed on {len(texts)} {label} ({cores} cores; {state}; {_load()})")
    print(f"{'system':52} {'sent/s':>7} {'/core':>6} {'ratio':>6} {'cos mean':>8} "
          f"{'cos min':>8} {'batch min':>9}")
    rows = []
    for name in systems:
        cos = np.sum(vectors[name] * base, axis=1)
        row = {
            "system": name, "texts": label, "sent_per_s": len(texts) / seconds[name],
            "sent_per_s_per_core": len(texts) / seconds[name] / cores,
            "ratio": seconds[anchor] / seconds[name], "cos_mean": float(cos.mean()),
            "cos_min": float(cos.min()), "batch_min": invariance.get(name, float("nan")),
        }
        rows.append(row)
        print(f"{name:52} {row['sent_per_s']:7.1f} {row['sent_per_s_per_core']:6.1f} "
              f"{row['ratio']:6.2f} {row['cos_mean']:8.4f} {row['cos_min']:8.4f} "
              f"{row['batch_min']:9.5f}")
    print(f"({_load()})")
    return rows


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def _at(fn: BatchFn, size: int) -> EncodeFn:
    return lambda texts: fn(texts, size)


def recall(doc_vecs: np.ndarray, query_vecs: np.ndarray, doc_ids: list[str],
           relevant: list[list[str]]) -> dict[str, float]:
    """recall@10 and MRR@10 of exact inner-product search."""
    scores = query_vecs @ doc_vecs.T
    top = np.argpartition(-scores, 10, axis=1)[:, :10]
    order = np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, 1), 1), 1)
    runs = [[doc_ids[j] for j in row] for row in order]
    res = evaluate_run(runs, relevant, ks=(10,))
    return {"recall@10": res["recall@10"], "mrr@10": res["mrr@10"]}


def st_anchor(threads: int | None) -> BatchFn:
    """Plain sentence-transformers, fp32 torch, normalized: the anchor."""
    import torch
    from sentence_transformers import SentenceTransformer

    if threads:
        torch.set_num_threads(threads)
    model = SentenceTransformer(str(minilm_path()), device="cpu")
    return lambda texts, size: model.encode(
        texts, batch_size=size, normalize_embeddings=True, convert_to_numpy=True
    )


def ours(enc: TransformerEncoder) -> BatchFn:
    """An embedops encoder as a plain function."""
    return lambda texts, size: enc.encode(texts, batch_size=size)


def one_per_run(enc: TransformerEncoder) -> BatchFn:
    """An encoder run on one text at a time (no padding, no neighbours)."""
    return lambda texts, size: np.vstack([enc.encode([t]) for t in texts])


def with_file(mv: Any, path: Path, threads: int | None) -> TransformerEncoder:
    """An encoder of ``mv`` running an arbitrary ONNX file (for the int8 contestants) in one
    ONNX Runtime session over every core (one batch at a time)."""
    from embedops.models.onnx_backend import OnnxRunner

    enc = TransformerEncoder.from_version(mv, backend="onnx", threads=threads, verify=False)
    enc.core.runner.hidden = OnnxRunner(path, threads)
    enc.core.workers = 1
    return enc


def quant_contestants(mv: Any, tmp: Path, threads: int | None) -> dict[str, tuple[BatchFn, int]]:
    """Int8 variants of the version's fused fp32 file, built into ``tmp``: dynamic scales (per
    batch, or per text with one text per run), static scales without smoothing, and smoothed
    static scales with 8-bit weights (the default uses 7-bit weights)."""
    from embedops.models.calibration import calibration_texts
    from embedops.models.onnx_backend import QuantizeConfig, quantize_onnx
    from embedops.models.onnx_static import _feeds, freeze_scales

    fp32, dynamic = mv.path / "onnx" / "model.onnx", tmp / "dynamic.onnx"
    quantize_onnx(fp32, dynamic, QuantizeConfig(activations="dynamic"))
    batches = _feeds(mv.path / "model", 256, calibration_texts(256, seed=0))
    files = {"static, no smoothing, 8-bit weights": (0.0, 8),
             "static, smoothing 0.75, 8-bit weights": (0.75, 8)}
    for alpha, bits in files.values():
        freeze_scales(dynamic, fp32, tmp / f"{alpha}-{bits}.onnx", batches, alpha, bits)
    dyn = with_file(mv, dynamic, threads)
    out = {"onnx-int8 dynamic, batch 32 (previous default)": (ours(dyn), 32),
           "onnx-int8 dynamic, one text per run": (one_per_run(dyn), 1)}
    for label, (alpha, bits) in files.items():
        out[f"onnx-int8 {label}"] = (ours(with_file(mv, tmp / f"{alpha}-{bits}.onnx",
                                                    threads)), 32)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--glosses", type=int, default=2000)
    parser.add_argument("--no-recall", action="store_true")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--quant", action="store_true", help="Add the int8 contestants.")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--warm", type=int, default=0,
                        help="Warm every system up on this many other texts of each kind.")
    parser.add_argument("--core", action="store_true",
                        help="Only the anchor and the default (at batch 32 and 64).")
    parser.add_argument("--workspace", type=Path, default=None,
                        help="Reuse minilm@1 of this workspace instead of importing it.")
    parser.add_argument("--json", type=Path, default=None, help="Also write results here.")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="bench-encode-") as tmp:
        reg = Registry(Workspace(args.workspace or Path(tmp) / "ws").ensure())
        began = time.perf_counter()
        mv = reg.get("minilm@1") if args.workspace else import_transformer(reg, "minilm")
        size = sum(p.stat().st_size for p in mv.path.rglob("*") if p.is_file())
        results["import"] = {"seconds": time.perf_counter() - began, "bytes": size,
                             "int8": mv.params["onnx"]["int8"]}
        print(f"import_transformer('minilm'): {results['import']['seconds']:.1f} s, "
              f"version folder {size / 2**20:.0f} MiB, int8 gate "
              f"{mv.params['onnx']['int8'].get('gate')}")
        systems = build_systems(mv, args.threads, args.core)
        if args.quant:
            systems.update(quant_contestants(mv, Path(tmp), args.threads))
        if not args.no_speed:
            results["speed"] = run_speed(args, systems)
        if not args.no_recall:
            results["recall"] = run_recall(args, {k: _at(*v) for k, v in systems.items()})
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


DEFAULT = "embedops default"


def build_systems(
    mv: Any, threads: int | None, core: bool = False
) -> dict[str, tuple[BatchFn, int]]:
    """The anchor first, then each embedops backend (the default's batch sizes too; with
    ``core``, only the default)."""
    systems: dict[str, tuple[BatchFn, int]] = {
        "sentence-transformers fp32 (torch)": (st_anchor(threads), 32)}
    default = TransformerEncoder.from_version(mv, threads=threads)
    systems[f"{DEFAULT} ({default.backend}, {default.core.workers} workers)"] = (ours(default),
                                                                                  32)
    systems["embedops default, batch 64"] = (ours(default), 64)
    if core:
        return systems
    for backend in ("torch", "onnx", "onnx-int8"):
        enc = TransformerEncoder.from_version(mv, backend=backend, threads=threads)
        systems[f"embedops {backend} ({enc.core.workers} workers)"] = (ours(enc), 32)
    previous = with_file(mv, mv.path / "onnx" / "model_int8.onnx", threads)
    systems["embedops onnx-int8, one session on all cores (previous default)"] = (
        ours(previous), 32)
    return systems


def run_speed(
    args: argparse.Namespace, systems: dict[str, tuple[BatchFn, int]]
) -> list[dict[str, Any]]:
    """Batch invariance, then speed tables on revdict documents and on WordNet glosses."""
    docs_all = read_jsonl_xz(args.data / "revdict" / "docs-20k.jsonl.xz", "text")
    docs = sample(docs_all, args.docs)
    others = sample(docs_all, 352, seed=7)
    invariance = {name: batch_invariance(fn, others[:32], others[32:])
                  for name, (fn, _) in systems.items() if "torch" not in name}
    anchor = next(iter(systems))
    rows = speed_table("revdict documents", systems, docs, anchor, invariance,
                       _warm_texts(docs_all, docs, args.warm))
    if args.glosses:
        glosses_all = read_jsonl_xz(args.data / "wordnet-glosses.jsonl.xz", "gloss")
        glosses = sample(glosses_all, args.glosses)
        rows += speed_table("WordNet glosses", systems, glosses, anchor, invariance,
                            _warm_texts(glosses_all, glosses, args.warm))
    return rows


def _warm_texts(pool: list[str], timed: list[str], n: int) -> list[str]:
    """``n`` texts of ``pool`` drawn with another seed, none of them among ``timed``."""
    if not n:
        return []
    skip = set(timed)
    return [t for t in sample(pool, n + len(timed), seed=11) if t not in skip][:n]


def run_recall(args: argparse.Namespace, systems: dict[str, EncodeFn]) -> dict[str, Any]:
    """recall@10 on revdict dev over docs-20k for the anchor (cached if present) and ONNX."""
    revdict = args.data / "revdict"
    doc_ids = read_jsonl_xz(revdict / "docs-20k.jsonl.xz", "id")
    docs = read_jsonl_xz(revdict / "docs-20k.jsonl.xz", "text")
    queries = read_jsonl_xz(revdict / "queries-dev.jsonl", "query")
    relevant = read_jsonl_xz(revdict / "queries-dev.jsonl", "relevant")
    out: dict[str, Any] = {}
    print(f"\n## revdict dev: {len(queries)} queries over {len(docs)} docs, exact inner product")
    cached = HERE / "out" / "minilm-docs20k.npy"
    # The fp32 ONNX vectors equal the anchor's (cosine 1.0000 above), so with the anchor's
    # cached document vectors the slow fp32 pass is skipped.
    default = next(name for name in systems if name.startswith(DEFAULT))
    fp32 = next((name for name in systems if name.startswith("embedops onnx (")), None)
    names = [default] if cached.exists() or fp32 is None else [fp32, default]
    for name in names:
        began = time.perf_counter()
        doc_vecs = systems[name](docs)
        out[name] = recall(doc_vecs, systems[name](queries), doc_ids, relevant)
        out[name]["encode_s"] = time.perf_counter() - began
        print(f"{name:46} recall@10 {out[name]['recall@10']:.4f}  MRR@10 "
              f"{out[name]['mrr@10']:.4f}  ({out[name]['encode_s']:.0f} s)")
    if cached.exists():
        anchor = next(iter(systems))
        st_docs = np.load(cached)
        if st_docs.shape[0] == len(docs):
            out[anchor] = recall(st_docs, systems[anchor](queries), doc_ids, relevant)
            print(f"{anchor:46} recall@10 {out[anchor]['recall@10']:.4f}  "
                  f"MRR@10 {out[anchor]['mrr@10']:.4f}  (docs from {cached.name})")
    return out


if __name__ == "__main__":
    main()
