"""Length-bucketed batching, pooling, the ONNX runner, int8 quantization options, static
scales and the export's quality gate."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from embedops.errors import IntegrityError, InvalidInput
from embedops.models.onnx_backend import INT8_FILE, OnnxRunner, QuantizeConfig, quantize_onnx
from embedops.models.onnx_batches import (
    Batcher,
    EncodeInfo,
    check_texts,
    cut_sorted,
    l2_normalize,
    pool,
)
from embedops.models.st_pipeline import pool_tokens, read_pipeline
from embedops.models.transformer import TransformerEncoder, import_transformer, minilm_path
from transformer_helpers import lee_sentences, shared_minilm, tiny_st_folder


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


def test_padded_rows_hold_each_encodings_ids_then_the_pad_id(batcher) -> None:
    texts = ["a", "a much longer sentence about whales and the sea", "two words"]
    encodings, _, positions = batcher.tokenize(texts)
    batcher.pad_id, pad = 7, batcher.pad_id
    try:
        arrays = batcher._pad(encodings)
    finally:
        batcher.pad_id = pad
    for row, enc in enumerate(encodings):
        n = len(enc.ids)
        assert arrays["input_ids"][row, :n].tolist() == enc.ids
        assert arrays["token_type_ids"][row, :n].tolist() == enc.type_ids
        assert (arrays["input_ids"][row, n:] == 7).all()
        assert arrays["attention_mask"][row].tolist() == [1] * n + [0] * (arrays["input_ids"]
                                                                          .shape[1] - n)
    assert all(a.dtype == np.int64 for a in arrays.values())


def _cost(lengths: np.ndarray, bounds: list[int], run_cost: int) -> float:
    runs = zip(bounds[:-1], bounds[1:], strict=True)
    return sum(int(lengths[a]) * (b - a) + run_cost for a, b in runs)


def _best_cost(lengths: np.ndarray, max_rows: int, run_cost: int) -> float:
    """Every way to cut ``lengths`` into runs, by brute force (small inputs only)."""
    n = len(lengths)
    best = float("inf")
    for mask in range(1 << max(n - 1, 0)):
        bounds = [0] + [i + 1 for i in range(n - 1) if mask >> i & 1] + [n]
        if all(b - a <= max_rows for a, b in zip(bounds[:-1], bounds[1:], strict=True)):
            best = min(best, _cost(lengths, bounds, run_cost))
    return best


def test_cut_sorted_finds_the_cheapest_cuts_within_the_row_limit() -> None:
    rng = np.random.default_rng(0)
    for _ in range(60):
        n = int(rng.integers(1, 11))
        lengths = np.sort(rng.integers(1, 300, n))[::-1]
        max_rows, run_cost = int(rng.integers(1, 6)), int(rng.integers(0, 200))
        bounds = cut_sorted(lengths, max_rows, run_cost)
        assert bounds[0] == 0 and bounds[-1] == n and bounds == sorted(set(bounds))
        assert max(b - a for a, b in zip(bounds[:-1], bounds[1:], strict=True)) <= max_rows
        assert _cost(lengths, bounds, run_cost) == _best_cost(lengths, max_rows, run_cost)
    assert cut_sorted(np.array([], dtype=np.int64), 4) == [0]


def test_one_long_text_does_not_pad_the_short_ones(batcher) -> None:
    """What a server's coalesced batch looks like: 55 short texts and one that reaches the
    length limit. Fixed-size chunks padded all 56 rows to the long one."""
    texts = ["a short definition of a word"] * 55 + ["word " * 200]
    encodings, _, positions = batcher.tokenize(texts)
    runs = list(batcher.batches(encodings, positions, batch_size=64))
    assert [len(r.positions) for r in runs] == [1, 55]
    assert runs[0].positions.tolist() == [55]
    assert runs[1].arrays["input_ids"].shape[1] < 16


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


def test_quantize_config_round_trips_and_checks_its_fields() -> None:
    cfg = QuantizeConfig(per_channel=False, op_types=["MatMul"], exclude_patterns=["layer.5"],
                         activations="dynamic", smooth_alpha=0.5, min_cosine=0.99)
    assert QuantizeConfig(**cfg.to_dict()) == cfg
    assert QuantizeConfig().activations == "static"
    for bad in ({"activations": "weekly"}, {"smooth_alpha": 1.5}, {"static_weight_bits": 4},
                {"calibration_texts": 2}):
        with pytest.raises(InvalidInput):
            QuantizeConfig(**bad)


def test_pool_tokens_every_mode_and_prompt_exclusion() -> None:
    hidden = np.arange(2 * 4 * 2, dtype=np.float32).reshape(2, 4, 2)
    mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1]])
    out = pool_tokens(hidden, mask, ["cls", "max", "mean", "mean_sqrt_len_tokens",
                                     "weightedmean", "lasttoken"])
    row = hidden[0, :3]
    expected = np.concatenate([row[0], row.max(0), row.mean(0), row.sum(0) / np.sqrt(3),
                               (row * [[1], [2], [3]]).sum(0) / 6, row[2]])
    np.testing.assert_allclose(out[0], expected, rtol=1e-6)
    np.testing.assert_allclose(out[1, -2:], hidden[1, 3])
    skipped = pool_tokens(hidden, mask, ["cls", "mean", "weightedmean"], prompt_length=2)
    np.testing.assert_allclose(skipped[0], np.concatenate([row[2], row[2], row[2]]))


def test_legacy_pooling_keys_keep_their_concatenation_order(tmp_path: Path) -> None:
    (tmp_path / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling",
         "type": "sentence_transformers.models.Pooling"},
    ]))
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": 8, "pooling_mode_mean_tokens": True,
        "pooling_mode_cls_token": True}))
    (tmp_path / "sentence_bert_config.json").write_text('{"max_seq_length": 600}')
    (tmp_path / "config.json").write_text('{"hidden_size": 8, "max_position_embeddings": 512}')
    spec = read_pipeline(tmp_path)
    assert (spec.pooling, spec.dim, spec.max_seq_length, spec.normalize) == ("cls+mean", 16, 512,
                                                                            False)
    assert spec.fast and spec.prompts == {} and spec.query_prompt is None


@pytest.mark.transformer
def test_static_int8_has_no_batch_dependent_ranges(tmp_path_factory) -> None:
    import onnx

    graph = onnx.load(str(shared_minilm(tmp_path_factory).path / INT8_FILE)).graph
    ops = [n.op_type for n in graph.node]
    assert "DynamicQuantizeLinear" not in ops
    assert ops.count("QuantizeLinear") == 24 and ops.count("MatMulIntegerToFloat") == 18


@pytest.mark.transformer
def test_the_quality_gate_refuses_a_poor_int8_copy(tmp_path: Path, registry, caplog) -> None:
    folder = tiny_st_folder(tmp_path / "tiny", dense="Tanh")
    with caplog.at_level(logging.WARNING, logger="embedops.models.onnx_backend"):
        mv = import_transformer(registry, str(folder), "strict",
                                quantize=QuantizeConfig(min_cosine=0.99999))
    int8 = mv.manifest["params"]["onnx"]["int8"]
    assert int8["accepted"] is False and int8["gate"]["mean_cosine"] < 0.99999
    assert "refused" in caplog.text and INT8_FILE not in mv.manifest["files"]
    assert TransformerEncoder.from_version(mv).backend == "onnx"
    dynamic = import_transformer(registry, str(folder), "dynamic",
                                 quantize=QuantizeConfig(activations="dynamic", min_cosine=0.0))
    # dynamic int8 depends on the batch, so it is never picked unless asked for
    assert TransformerEncoder.from_version(dynamic).backend == "onnx"
    enc = TransformerEncoder.from_version(dynamic, backend="onnx-int8")
    assert enc.encode(["a cat"]).shape == (1, 16)


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
