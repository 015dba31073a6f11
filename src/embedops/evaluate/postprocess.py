"""What post-processing costs: retrieval quality lost and memory saved, step by step.

``postprocess_report`` encodes a small retrieval probe once (WordNet lemma → its glosses, from the
glosses the package ships) and, for static models, the WordSim-353 pairs; then for each step
(``none``, ``pca:128``, ``truncate:256``, ``float16``, ``int8``, ``binary``, or a chain such as
``pca:128+int8``) it applies the step to documents and queries alike and reports recall@10, WS353
Spearman, bytes per vector and the share of memory saved against float32 at the model's dim.
"""

from __future__ import annotations

import json
import lzma
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedops.errors import EmbedopsError, InvalidInput
from embedops.evaluate.retrieval import recall_at_k
from embedops.models.registry import Registry
from embedops.models.static import STATIC_KINDS
from embedops.types import Encoder, FloatArray
from embedops.vectors.postprocess import Postprocess, fit_pca, parse_step, supports_matryoshka
from embedops.vectors.quantize import (
    Int8Calibration,
    Quantization,
    bytes_per_vector,
    quantize,
    similarity,
)

GLOSSES = Path(__file__).resolve().parent.parent / "data" / "wordnet-glosses.jsonl.xz"
K = 10


@dataclass(frozen=True)
class Probe:
    """Queries (lemmas), documents (glosses) and, per query, the indices of its relevant docs."""

    queries: list[str]
    docs: list[str]
    relevant: list[set[str]]


def gloss_probe(path: Path = GLOSSES, n_synsets: int = 1000, seed: int = 0) -> Probe:
    """A seeded sample of ``n_synsets`` WordNet synsets: each distinct first lemma is a query
    whose relevant documents are the glosses of every sampled synset that has that lemma.
    """
    if not path.is_file():
        raise InvalidInput(
            f"the retrieval probe needs {path}, which is missing",
            "reinstall embedops (the WordNet glosses ship with it)",
        )
    with lzma.open(path, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    picked = random.Random(seed).sample(rows, min(n_synsets, len(rows)))
    docs = [f"{r['gloss']}" for r in picked]
    by_lemma: dict[str, set[str]] = {}
    for i, row in enumerate(picked):
        for lemma in row["lemmas"]:
            by_lemma.setdefault(lemma.replace("_", " ").lower(), set()).add(str(i))
    firsts = list(dict.fromkeys(r["lemmas"][0].replace("_", " ").lower() for r in picked))
    return Probe(firsts, docs, [by_lemma[q] for q in firsts])


def ws353_pairs() -> tuple[list[str], list[str], np.ndarray]:
    """WordSim-353 as shipped by gensim: first words, second words, human scores."""
    from gensim.test.utils import datapath

    left, right, gold = [], [], []
    for line in Path(datapath("wordsim353.tsv")).read_text().splitlines():
        parts = line.split("\t")
        if line.startswith("#") or len(parts) != 3:
            continue
        left.append(parts[0].lower())
        right.append(parts[1].lower())
        gold.append(float(parts[2]))
    return left, right, np.asarray(gold)


@dataclass(frozen=True)
class _Encoded:
    docs: FloatArray
    queries: FloatArray
    relevant: list[set[str]]
    words: tuple[FloatArray, FloatArray, np.ndarray] | None


def _encode(encoder: Encoder, probe: Probe, static: bool) -> _Encoded:
    words = None
    if static:
        left, right, gold = ws353_pairs()
        a, b = encoder.encode(left), encoder.encode(right)
        known = (np.abs(a).sum(axis=1) > 0) & (np.abs(b).sum(axis=1) > 0)
        words = (a[known], b[known], gold[known])
    return _Encoded(
        encoder.encode(probe.docs), encoder.encode(probe.queries), probe.relevant, words
    )


def _scores(
    cfg: Postprocess,
    enc: _Encoded,
    ref: str,
    matryoshka: bool,
    queries: FloatArray,
    docs: FloatArray,
) -> FloatArray:
    pca = (
        fit_pca(
            enc.docs if cfg.truncate_dim is None else enc.docs[:, : cfg.truncate_dim],
            cfg.pca_dim,
            ref,
        )
        if cfg.pca_dim
        else None
    )
    doc_f = cfg.apply(docs, ref, pca=pca, matryoshka=matryoshka)
    query_f = cfg.apply(queries, ref, pca=pca, matryoshka=matryoshka)
    calibration = (
        Int8Calibration.fit(cfg.apply(enc.docs, ref, pca=pca, matryoshka=matryoshka))
        if cfg.method is Quantization.INT8
        else None
    )
    return similarity(query_f, quantize(doc_f, cfg.method, calibration))


def _step_row(step: str, enc: _Encoded, ref: str, dim: int, matryoshka: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for part in step.split("+"):
        fields.update(parse_step(part))
    cfg = Postprocess(**fields)
    scores = _scores(cfg, enc, ref, matryoshka, enc.queries, enc.docs)
    top = np.argsort(-scores, axis=1)[:, :K]
    recall = float(
        np.mean(
            [
                recall_at_k([str(j) for j in row], rel, K)
                for row, rel in zip(top, enc.relevant, strict=True)
            ]
        )
    )
    out_dim = cfg.pca_dim or cfg.truncate_dim or dim
    nbytes = bytes_per_vector(cfg.method, out_dim)
    row: dict[str, Any] = {
        "step": step,
        "dim": out_dim,
        "bytes_per_vector": nbytes,
        "saved_pct": round(100.0 * (1 - nbytes / (4 * dim)), 1),
        f"recall@{K}": round(recall, 4),
    }
    if enc.words is not None:
        from scipy.stats import spearmanr

        a, b, gold = enc.words
        sims = np.diag(_scores(cfg, enc, ref, matryoshka, a, b))
        row["ws353"] = round(float(spearmanr(sims, gold).statistic), 4)
    return row


def postprocess_report(
    registry: Registry, ref: str, steps: list[str], *, probe: Probe | None = None
) -> list[dict[str, Any]]:
    """One row per step: recall@10 on the gloss probe (and WS353 for static models) next to
    bytes per vector and memory saved, with the loss against ``none``. A step that cannot apply
    to this model (e.g. truncation of a non-Matryoshka model) gets an ``error`` entry instead.
    """
    from embedops.models.loader import load_encoder

    if not isinstance(steps, list) or not steps:
        raise InvalidInput(
            "postprocess_report needs a non-empty list of steps",
            "e.g. ['none', 'pca:128', 'int8', 'binary']",
        )
    for step in steps:
        for part in step.split("+") if isinstance(step, str) else [step]:
            parse_step(part)
    mv = registry.get(ref)
    encoder = load_encoder(mv, registry)
    enc = _encode(encoder, probe or gloss_probe(), mv.kind in STATIC_KINDS)
    base = _step_row("none", enc, mv.ref, encoder.dim, supports_matryoshka(mv))
    rows = []
    for step in steps:
        try:
            row = _step_row(step, enc, mv.ref, encoder.dim, supports_matryoshka(mv))
        except EmbedopsError as exc:
            rows.append({"step": step, "error": str(exc)})
            continue
        for metric in (f"recall@{K}", "ws353"):
            if metric in row:
                row[f"{metric}_lost"] = round(base[metric] - row[metric], 4)
        rows.append(row)
    return rows
