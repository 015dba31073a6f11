"""The export's quality gate: a quantized copy is kept only if it stays close to float32.

Three checks, all through the model's own Pooling / Dense / Normalize steps, on texts the
calibration did not see (``calibration``):

* fidelity: mean cosine of the quantized sentence vectors to the float32 ones;
* batch invariance: the least cosine of a text's vector encoded alone to the same text encoded
  in a padded batch of 16 (a vector must not depend on its neighbours);
* retrieval: recall@10 on a small labelled search task (``golden_retrieval``) must not drop by
  more than ``max_recall_drop``.

A runner is anything with ``run(arrays) -> hidden states`` (ONNX Runtime, OpenVINO).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Texts per gate check batch (the batch-invariance check compares against batch size 1).
_BATCH = 16


@dataclass(frozen=True)
class GateBar:
    """The least a quantized copy must reach (see the module docstring)."""

    min_cosine: float = 0.995
    min_batch_cosine: float = 0.999
    max_recall_drop: float = 0.01


def feeds(model_dir: Path, max_seq_length: int, texts: list[str], batch_size: int = _BATCH
          ) -> list[Any]:
    """Length-sorted padded batches of ``texts`` (the encoder's own batching)."""
    from embedops.models.onnx_batches import Batcher

    batcher = Batcher(model_dir / "tokenizer.json", max_seq_length)
    encodings, _, positions = batcher.tokenize(texts)
    return list(batcher.batches(encodings, positions, batch_size))


def sentence_vectors(runner: Any, model_dir: Path, batches: list[Any]) -> np.ndarray:
    """The folder's sentence vectors from ``runner``, rows in input order."""
    from embedops.models.st_pipeline import PostPipeline, pool_tokens, read_pipeline

    spec = read_pipeline(model_dir)
    post = PostPipeline(spec, model_dir) if spec.fast else None
    n = sum(len(b.positions) for b in batches)
    out: np.ndarray | None = None
    for batch in batches:
        hidden = runner.run(batch.arrays)
        mask = batch.arrays["attention_mask"]
        vectors = post(hidden, mask) if post else pool_tokens(hidden, mask, ["mean"])
        if out is None:
            out = np.zeros((n, vectors.shape[1]), dtype=np.float32)
        out[batch.positions] = vectors
    assert out is not None
    return out


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.asarray(np.sum(a * b, axis=1) / np.maximum(norms, 1e-12))


def recall_at_10(queries: np.ndarray, docs: np.ndarray, relevant: list[int]) -> float:
    """Share of queries whose relevant document is among their 10 nearest by cosine."""
    q = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    d = docs / np.maximum(np.linalg.norm(docs, axis=1, keepdims=True), 1e-12)
    scores = q @ d.T
    target = scores[np.arange(len(relevant)), relevant]
    rank = (scores > target[:, None]).sum(axis=1)
    return float(np.mean(rank < 10))


class Gate:
    """Measures candidates against the float32 ``reference`` runner on the same texts (the
    reference's vectors are computed once)."""

    def __init__(self, reference: Any, model_dir: Path, max_seq_length: int) -> None:
        from embedops.models.calibration import calibration_texts, golden_retrieval

        self.model_dir = model_dir
        self.reference = reference
        held_out = calibration_texts(128, seed=2)
        self.batched = feeds(model_dir, max_seq_length, held_out)
        self.alone = feeds(model_dir, max_seq_length, held_out, batch_size=1)
        queries, docs, self.relevant = golden_retrieval()
        self.golden = [feeds(model_dir, max_seq_length, t, 32) for t in (queries, docs)]
        self._expected: tuple[np.ndarray, float] | None = None

    def _vectors(self, runner: Any, batches: list[Any]) -> np.ndarray:
        return sentence_vectors(runner, self.model_dir, batches)

    def _recall(self, runner: Any) -> float:
        queries, docs = (self._vectors(runner, b) for b in self.golden)
        return recall_at_10(queries, docs, self.relevant)

    def measure(self, candidate: Any) -> dict[str, Any]:
        """The gate's figures for ``candidate``."""
        if self._expected is None:
            self._expected = (self._vectors(self.reference, self.batched),
                              self._recall(self.reference))
        vectors, recall = self._expected
        b = self._vectors(candidate, self.batched)
        cos = _cosines(vectors, b)
        invariance = _cosines(b, self._vectors(candidate, self.alone))
        return {
            "mean_cosine": round(float(cos.mean()), 5), "min_cosine": round(float(cos.min()), 5),
            "texts": int(len(cos)), "batch_min_cosine": round(float(invariance.min()), 6),
            "recall@10": round(self._recall(candidate), 4), "recall@10_fp32": round(recall, 4),
            "golden_queries": len(self.relevant),
        }


def verdict(figures: dict[str, Any], bar: GateBar, batch: bool = True) -> list[str]:
    """What ``figures`` fail of ``bar`` (empty: accepted); ``batch`` False skips the batch
    invariance check (for dynamic scales, which depend on the batch by design)."""
    failed = []
    if figures["mean_cosine"] < bar.min_cosine:
        failed.append(f"mean cosine {figures['mean_cosine']:.4f} to fp32 is below "
                      f"{bar.min_cosine:.4f}")
    if batch and figures["batch_min_cosine"] < bar.min_batch_cosine:
        failed.append(f"a text alone vs in a batch reaches cosine "
                      f"{figures['batch_min_cosine']:.5f}, below {bar.min_batch_cosine}")
    drop = figures["recall@10_fp32"] - figures["recall@10"]
    if drop > bar.max_recall_drop:
        failed.append(f"golden recall@10 drops by {drop:.4f} (more than "
                      f"{bar.max_recall_drop})")
    return failed
