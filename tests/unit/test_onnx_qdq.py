"""The QDQ int8 copy for OpenVINO: its graph, its weights, its fidelity, the OpenVINO runner,
the quality gate's verdicts and parallel batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedops.errors import IntegrityError, InvalidInput
from embedops.models.onnx_qdq import build_qdq, quantize_weights
from embedops.models.openvino_backend import OpenVinoRunner, openvino_available
from embedops.models.quality_gate import GateBar, feeds, recall_at_10, sentence_vectors, verdict
from transformer_helpers import lee_sentences, shared_minilm, tiny_st_folder

needs_openvino = pytest.mark.skipif(not openvino_available(), reason="openvino not installed")


def test_weights_quantize_per_column_within_half_a_step() -> None:
    w = np.random.default_rng(0).normal(size=(64, 8)) * np.linspace(0.1, 10, 8)
    q, scales = quantize_weights(w, bits=8)
    assert q.dtype == np.int8 and np.abs(q).max() == 127 and scales.shape == (8,)
    assert np.all(np.abs(q * scales - w) <= scales / 2 + 1e-9)
    q7, _ = quantize_weights(w, bits=7)
    assert np.abs(q7).max() == 63


def test_verdict_names_each_failed_check() -> None:
    good = {"mean_cosine": 0.998, "batch_min_cosine": 1.0, "recall@10": 0.60,
            "recall@10_fp32": 0.605}
    assert verdict(good, GateBar()) == []
    bad = {**good, "mean_cosine": 0.99, "batch_min_cosine": 0.97, "recall@10": 0.5}
    failed = verdict(bad, GateBar())
    assert len(failed) == 3 and "mean cosine" in failed[0] and "alone" in failed[1]
    assert "recall@10 drops" in failed[2]
    assert len(verdict(bad, GateBar(), batch=False)) == 2


def test_recall_at_10_counts_the_relevant_document_in_the_top_ten() -> None:
    docs = np.eye(20, dtype=np.float32)
    queries = docs[[3, 7]] + 0.01
    assert recall_at_10(queries, docs, [3, 7]) == 1.0
    assert recall_at_10(-queries, docs, [3, 7]) == 0.0


@pytest.mark.transformer
def test_qdq_copy_of_a_small_bert_stays_close_to_fp32(tmp_path: Path) -> None:
    import onnx

    from embedops.models.onnx_backend import OnnxRunner, export_onnx

    folder = tiny_st_folder(tmp_path / "tiny")
    raw, qdq = tmp_path / "raw.onnx", tmp_path / "qdq.onnx"
    export_onnx(folder, raw)
    batches = feeds(folder, 64, lee_sentences(64))
    sites = build_qdq(raw, qdq, batches, alpha=0.75)
    graph = onnx.load(str(qdq)).graph
    ops = [n.op_type for n in graph.node]
    # per layer: Q/K/V share one input, then attention output, FFN in, FFN out
    assert sites == 2 * 4 and ops.count("QuantizeLinear") == sites
    int8_weights = [i for i in graph.initializer if i.data_type == onnx.TensorProto.INT8
                    and len(i.dims) == 2]
    assert len(int8_weights) == 2 * 6
    held_out = feeds(folder, 64, lee_sentences(200)[100:])
    a = sentence_vectors(OnnxRunner(raw), folder, held_out)
    b = sentence_vectors(OnnxRunner(qdq), folder, held_out)  # ONNX Runtime reads QDQ too
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cos.mean() > 0.99, cos.mean()


def test_qdq_refuses_a_graph_without_weight_matmuls(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph), str(tmp_path / "m.onnx"))
    with pytest.raises(ValueError, match="no MatMul"):
        build_qdq(tmp_path / "m.onnx", tmp_path / "q.onnx", [], alpha=0.75)


@needs_openvino
def test_openvino_runner_refuses_missing_files_and_bad_workers(tmp_path: Path) -> None:
    with pytest.raises(IntegrityError, match="missing"):
        OpenVinoRunner(tmp_path / "none.onnx")


@pytest.mark.transformer
@needs_openvino
def test_openvino_default_is_parallel_batch_invariant_and_close_to_fp32(tmp_path_factory
                                                                        ) -> None:
    from embedops.models.onnx_backend import QDQ_FILE
    from embedops.models.transformer import TransformerEncoder

    mv = shared_minilm(tmp_path_factory)
    with pytest.raises(InvalidInput, match="workers"):
        OpenVinoRunner(mv.path / QDQ_FILE, workers=0)
    fast = TransformerEncoder.from_version(mv, threads=2, verify=False)
    assert fast.backend == "openvino-int8" and fast.core.workers == 2
    fp32 = TransformerEncoder.from_version(mv, backend="onnx", threads=1, verify=False)
    texts = lee_sentences(150)
    ours, reference = fast.encode(texts, batch_size=8), fp32.encode(texts)
    assert np.sum(ours * reference, axis=1).mean() > 0.995
    one_by_one = np.vstack([fast.encode([t]) for t in texts[:20]])
    assert np.min(np.sum(one_by_one * ours[:20], axis=1)) >= 0.999
