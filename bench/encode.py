"""Transformer encoding speed and quality: embedops backends vs plain sentence-transformers.

One run, side by side, on real text (revdict Webster definitions and WordNet glosses):

* speed: sentences/s of ``SentenceTransformer.encode`` (fp32, batch 32: the anchor) and of each
  embedops backend, timed chunk by chunk in turn so that load from other processes hits all of
  them alike; the ratio to the anchor;
* fidelity: mean and minimum cosine of each backend's vectors to the anchor's fp32 vectors;
* retrieval: revdict recall@10 / MRR@10 (dev queries over docs-20k, exact inner product),
  metrics from ``embedops.evaluate.retrieval``;
* ``--breakdown``: the steps one by one (unfused ONNX, fused ONNX, int8 variants, batch size).

It also reports how long ``import_transformer('minilm')`` took and the version folder's size.

    .venv/bin/python bench/encode.py [--data ../shared/data] [--docs 2000] [--glosses 2000]
        [--no-recall] [--no-speed] [--breakdown] [--threads N]
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
    """Seconds and vectors per system, running each chunk through every system in turn."""
    seconds = dict.fromkeys(systems, 0.0)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in systems}
    for start in range(0, len(texts), CHUNK):
        chunk = texts[start : start + CHUNK]
        for name, fn in systems.items():
            began = time.perf_counter()
            parts[name].append(fn(chunk))
            seconds[name] += time.perf_counter() - began
    return seconds, {name: np.vstack(p) for name, p in parts.items()}


def speed_table(
    label: str, systems: dict[str, EncodeFn], texts: list[str], anchor: str
) -> list[dict[str, Any]]:
    """Print sentences/s, ratio and cosine to the anchor for every system; return the rows."""
    for fn in systems.values():
        fn(texts[:32])  # warm-up: first-call allocations and lazy initialisation
    seconds, vectors = timed_side_by_side(systems, texts)
    base = vectors[anchor]
    print(f"\n## speed on {len(texts)} {label}")
    print(f"{'system':32} {'sent/s':>8} {'ratio':>6} {'cos mean':>9} {'cos min':>8}")
    rows = []
    for name in systems:
        cos = np.sum(vectors[name] * base, axis=1)
        row = {
            "system": name, "texts": label, "sent_per_s": len(texts) / seconds[name],
            "ratio": seconds[anchor] / seconds[name], "cos_mean": float(cos.mean()),
            "cos_min": float(cos.min()),
        }
        rows.append(row)
        print(f"{name:32} {row['sent_per_s']:8.1f} {row['ratio']:6.2f} "
              f"{row['cos_mean']:9.4f} {row['cos_min']:8.4f}")
    return rows


def recall(doc_vecs: np.ndarray, query_vecs: np.ndarray, doc_ids: list[str],
           relevant: list[list[str]]) -> dict[str, float]:
    """recall@10 and MRR@10 of exact inner-product search."""
    scores = query_vecs @ doc_vecs.T
    top = np.argpartition(-scores, 10, axis=1)[:, :10]
    order = np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, 1), 1), 1)
    runs = [[doc_ids[j] for j in row] for row in order]
    res = evaluate_run(runs, relevant, ks=(10,))
    return {"recall@10": res["recall@10"], "mrr@10": res["mrr@10"]}


def st_anchor(threads: int | None) -> EncodeFn:
    """Plain sentence-transformers, fp32, batch 32, normalized: the anchor."""
    import torch
    from sentence_transformers import SentenceTransformer

    if threads:
        torch.set_num_threads(threads)
    model = SentenceTransformer(str(minilm_path()), device="cpu")
    return lambda texts: model.encode(
        texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True
    )


def ours(enc: TransformerEncoder, batch_size: int = 32) -> EncodeFn:
    """An embedops encoder as a plain function."""
    return lambda texts: enc.encode(texts, batch_size=batch_size)


def with_file(mv: Any, path: Path, threads: int | None) -> TransformerEncoder:
    """An encoder of ``mv`` running an arbitrary ONNX file (for the breakdown variants)."""
    from embedops.models.transformer import _OnnxPooled

    enc = TransformerEncoder.from_version(mv, backend="onnx", threads=threads, verify=False)
    enc.runner = _OnnxPooled(path, threads)
    return enc


def breakdown_variants(mv: Any, tmp: Path, threads: int | None) -> dict[str, EncodeFn]:
    """Unfused fp32 and int8 variants built from the version's model folder into ``tmp``."""
    from embedops.models.onnx_backend import QuantizeConfig, export_onnx, quantize_onnx

    raw = tmp / "raw.onnx"
    export_onnx(mv.path / "model", raw)
    variants = {"raw": raw}
    fused = mv.path / "onnx" / "model.onnx"
    for label, src, cfg in (
        ("int8 unfused per-tensor", raw, QuantizeConfig(per_channel=False)),
        ("int8 fused MatMul-only", fused, QuantizeConfig(op_types=("MatMul",))),
        ("int8 fused reduce-range", fused, QuantizeConfig(reduce_range=True)),
    ):
        out = tmp / (label.replace(" ", "_") + ".onnx")
        quantize_onnx(src, out, cfg)
        variants[label] = out
    systems: dict[str, EncodeFn] = {}
    for label, path in variants.items():
        systems[f"onnx {label}"] = ours(with_file(mv, path, threads))
    return systems


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--glosses", type=int, default=2000)
    parser.add_argument("--no-recall", action="store_true")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--breakdown", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="Also write results here.")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="bench-encode-") as tmp:
        reg = Registry(Workspace(Path(tmp) / "ws").ensure())
        began = time.perf_counter()
        mv = import_transformer(reg, "minilm")
        size = sum(p.stat().st_size for p in mv.path.rglob("*") if p.is_file())
        results["import"] = {"seconds": time.perf_counter() - began, "bytes": size}
        print(f"import_transformer('minilm'): {results['import']['seconds']:.1f} s, "
              f"version folder {size / 2**20:.0f} MiB")
        systems = build_systems(mv, args.threads)
        if args.breakdown:
            systems.update(breakdown_variants(mv, Path(tmp), args.threads))
        if not args.no_speed:
            results["speed"] = run_speed(args, systems)
        if not args.no_recall:
            results["recall"] = run_recall(args, systems)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def build_systems(mv: Any, threads: int | None) -> dict[str, EncodeFn]:
    """The anchor first, then each embedops backend (and batch-size variants of int8)."""
    systems: dict[str, EncodeFn] = {"sentence-transformers fp32": st_anchor(threads)}
    for backend in ("torch", "onnx", "onnx-int8"):
        enc = TransformerEncoder.from_version(mv, backend=backend, threads=threads)
        systems[f"embedops {backend}"] = ours(enc)
    int8 = TransformerEncoder.from_version(mv, backend="onnx-int8", threads=threads)
    systems["embedops onnx-int8 batch 16"] = ours(int8, 16)
    return systems


def run_speed(args: argparse.Namespace, systems: dict[str, EncodeFn]) -> list[dict[str, Any]]:
    """Speed tables on revdict documents and on WordNet glosses."""
    docs = sample(read_jsonl_xz(args.data / "revdict" / "docs-20k.jsonl.xz", "text"), args.docs)
    glosses = sample(read_jsonl_xz(args.data / "wordnet-glosses.jsonl.xz", "gloss"), args.glosses)
    anchor = next(iter(systems))
    return [
        *speed_table("revdict documents", systems, docs, anchor),
        *speed_table("WordNet glosses", systems, glosses, anchor),
    ]


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
    names = ["embedops onnx-int8"] if cached.exists() else ["embedops onnx", "embedops onnx-int8"]
    for name in names + [n for n in systems if n.startswith("onnx ")]:
        began = time.perf_counter()
        doc_vecs = systems[name](docs)
        out[name] = recall(doc_vecs, systems[name](queries), doc_ids, relevant)
        out[name]["encode_s"] = time.perf_counter() - began
        print(f"{name:32} recall@10 {out[name]['recall@10']:.4f}  MRR@10 {out[name]['mrr@10']:.4f}"
              f"  ({out[name]['encode_s']:.0f} s)")
    if cached.exists():
        anchor = next(iter(systems))
        st_docs = np.load(cached)
        if st_docs.shape[0] == len(docs):
            out[anchor] = recall(st_docs, systems[anchor](queries), doc_ids, relevant)
            print(f"{anchor:32} recall@10 {out[anchor]['recall@10']:.4f}  "
                  f"MRR@10 {out[anchor]['mrr@10']:.4f}  (docs from {cached.name})")
    return out


if __name__ == "__main__":
    main()
