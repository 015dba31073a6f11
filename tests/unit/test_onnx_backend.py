"""Length-bucketed batching, pooling, the ONNX runner and int8 quantization options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedops.errors import IntegrityError, InvalidInput
from embedops.models.onnx_backend import INT8_FILE, OnnxRunner, QuantizeConfig, quantize_onnx
from embedops.models.onnx_batches import Batcher, EncodeInfo, check_texts, l2_normalize, pool
from embedops.models.transformer import minilm_path
from transformer_helpers import lee_sentences, shared_minilm


@pytest.fixture(scope="module")
def batcher() -> Batcher:
    return Batcher(minilm_path() / "tokenizer.json", max_seq_length=32)


def test_batches_are_length_sorted_padded_to_their_longest_and_cover_all(batcher) -> None:
    texts = lee_sentences(40)
    encodings, info, positions = batcher.tokenize(texts)
    assert positions == list(range(40)) and info == EncodeInfo(40, info.truncated, 0, ())
    seen: list[int] = []
    widths = []
    for batch in batcher.batches(encodings, positions, batch_size=8):
        mask = batch.arrays["attention_mask"]
        assert mask.shape[0] <= 8 and mask.sum(axis=1).max() == mask.shape[1]
        assert batch.arrays["input_ids"].shape == mask.shape
        assert (batch.arrays["input_ids"][mask == 0] == 0).all()
        widths.append(mask.shape[1])
        seen.extend(batch.positions.tolist())
    assert sorted(seen) == list(range(40))
    assert widths == sorted(widths, reverse=True) and widths[0] <= 32
    assert info.truncated == sum(1 for e in encodings if e.overflowing)


def test_batch_size_must_be_positive(batcher) -> None:
    encodings, _, positions = batcher.tokenize(["a"])
    with pytest.raises(InvalidInput, match="batch_size"):
        list(batcher.batches(encodings, positions, 0))


def test_check_texts_accepts_any_sequence_of_strings() -> None:
    assert check_texts(("a", "b")) == ["a", "b"]
    with pytest.raises(InvalidInput, match="position 1 is float"):
        check_texts(["a", 1.5])


def test_pooling_ignores_padding() -> None:
    hidden = np.array([[[1.0, 2.0], [3.0, 4.0], [100.0, -100.0]]], dtype=np.float32)
    mask = np.array([[1, 1, 0]])
    np.testing.assert_allclose(pool(hidden, mask, "mean"), [[2.0, 3.0]])
    np.testing.assert_allclose(pool(hidden, mask, "max"), [[3.0, 4.0]])
    np.testing.assert_allclose(pool(hidden, mask, "cls"), [[1.0, 2.0]])
    normed = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(normed, [[0.6, 0.8], [0.0, 0.0]])


def test_runner_refuses_missing_files_and_bad_threads(tmp_path: Path) -> None:
    with pytest.raises(IntegrityError, match="missing"):
        OnnxRunner(tmp_path / "none.onnx")


@pytest.mark.transformer
def test_runner_threads_and_inputs(tmp_path_factory) -> None:
    path = shared_minilm(tmp_path_factory).path / INT8_FILE
    with pytest.raises(InvalidInput, match="threads"):
        OnnxRunner(path, threads=0)
    runner = OnnxRunner(path, threads=1)
    assert set(runner.inputs) == {"input_ids", "attention_mask", "token_type_ids"}
    ids = np.array([[101, 7592, 2088, 102]], dtype=np.int64)
    hidden = runner.run({"input_ids": ids, "attention_mask": np.ones_like(ids),
                         "token_type_ids": np.zeros_like(ids)})
    assert hidden.shape == (1, 4, 384) and hidden.dtype == np.float32


def test_quantize_config_round_trips() -> None:
    cfg = QuantizeConfig(per_channel=False, op_types=["MatMul"], exclude_patterns=["layer.5"])
    assert QuantizeConfig(**cfg.to_dict()) == cfg


@pytest.mark.transformer
@pytest.mark.slow
def test_excluded_nodes_stay_fp32(tmp_path_factory, tmp_path: Path) -> None:
    import onnx

    fp32 = shared_minilm(tmp_path_factory).path / "onnx" / "model.onnx"
    cfg = QuantizeConfig(op_types=("MatMul",), exclude_patterns=("layer.5/",))
    kept = quantize_onnx(fp32, tmp_path / "q.onnx", cfg)
    assert kept and all("layer.5/" in name for name in kept)
    graph = onnx.load(str(tmp_path / "q.onnx")).graph
    matmuls = {n.name for n in graph.node if n.op_type == "MatMul"}
    assert set(kept) <= matmuls
    assert any(n.op_type == "MatMulInteger" for n in graph.node)
