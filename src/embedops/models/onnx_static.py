"""Static int8: activation scales calibrated on real text, so vectors do not depend on the batch.

ONNX Runtime's dynamic quantization measures each activation's range on the batch being run,
so a text's vector changes with its batch neighbours and padding. Here the dynamically
quantized graph is kept (its fast integer kernels: ``MatMulInteger``, ``QAttention``) but every
``DynamicQuantizeLinear`` becomes a ``QuantizeLinear`` with constants calibrated once on real
texts (``calibration.calibration_texts``), measured over real tokens only (padding never
counts).

Smoothing (SmoothQuant, Xiao et al. 2023) keeps the quality that a single scale per activation
tensor would lose to a few outlier channels: channel ``k`` is divided by
``s_k = max|x_k|^alpha / max|W_k|^(1-alpha)`` inside the ``QuantizeLinear`` (a per-channel
scale) and the weight rows are multiplied by ``s_k`` before they are quantized per column, so
the product is unchanged while both sides quantize well (``alpha`` 0 turns smoothing off).

``quality_gate`` then compares the int8 file's sentence vectors with the fp32 file's on other
texts; a model below the bar keeps fp32 (the caller removes the int8 file).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_QUANTIZED = "_quantized"


def _feeds(model_dir: Path, max_seq_length: int, texts: list[str], batch_size: int = 16) -> Any:
    from embedops.models.onnx_batches import Batcher

    batcher = Batcher(model_dir / "tokenizer.json", max_seq_length)
    encodings, _, positions = batcher.tokenize(texts)
    return list(batcher.batches(encodings, positions, batch_size))


def channel_ranges(
    fp32_path: Path, names: list[str], batches: list[Any]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-channel (min, max) of each named activation over the real tokens of ``batches``."""
    import onnx
    from onnx import TensorProto, helper

    from embedops.models.runtime_imports import import_onnxruntime

    ort = import_onnxruntime()

    model = onnx.load(str(fp32_path))
    outputs = {o.name for o in model.graph.output}
    for name in names:
        if name not in outputs:
            model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), opts,
                                   providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    ranges: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for batch in batches:
        real = batch.arrays["attention_mask"].astype(bool)
        values = session.run(names, {k: batch.arrays[k] for k in inputs})
        for name, x in zip(names, values, strict=True):
            rows = np.asarray(x)[real]
            lo, hi = rows.min(axis=0), rows.max(axis=0)
            if name in ranges:
                lo, hi = np.minimum(ranges[name][0], lo), np.maximum(ranges[name][1], hi)
            ranges[name] = (lo, hi)
    return ranges


def _requantize(
    weights: np.ndarray, smooth: np.ndarray, bits: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rows scaled by ``smooth``, then symmetric per output column with ``bits``-bit range
    (held in int8): (quantized, scales)."""
    top = 2 ** (bits - 1) - 1
    scaled = weights.astype(np.float64) * smooth[:, None]
    scales = np.abs(scaled).max(axis=0) / top
    scales[scales == 0] = 1.0
    q = np.clip(np.round(scaled / scales), -top, top).astype(np.int8)
    return q, scales.astype(np.float32)


@dataclass
class _Frozen:
    """One activation's calibrated quantization: its smoothing and uint8 scale / zero point."""

    smooth: np.ndarray
    step: float
    zero: int

    @classmethod
    def fit(cls, lo: np.ndarray, hi: np.ndarray, w_max: np.ndarray, alpha: float) -> _Frozen:
        act_max = np.maximum(np.abs(lo), np.abs(hi)) + 1e-8
        if alpha == 0:  # no smoothing: one scale for the whole activation tensor
            smooth = np.ones_like(act_max)
        else:
            smooth = act_max**alpha / (w_max + 1e-8) ** (1 - alpha)
        low, high = min(float((lo / smooth).min()), 0.0), max(float((hi / smooth).max()), 0.0)
        step = (high - low) / 255.0 or 1.0
        return cls(smooth, step, int(np.clip(round(-low / step), 0, 255)))


class _Rewrite:
    """Edits of one graph: initializers to replace and nodes to replace or drop."""

    def __init__(self, graph: Any) -> None:
        self.graph = graph
        self.inits = {i.name: i for i in graph.initializer}
        self.users: dict[str, list[Any]] = {}
        for node in graph.node:
            for name in node.input:
                self.users.setdefault(name, []).append(node)
        self.producer = {out: n for n in graph.node for out in n.output}
        self.replace: dict[str, list[Any]] = {}
        self.drop: set[str] = set()

    def set(self, name: str, array: np.ndarray) -> None:
        from onnx import numpy_helper

        if name in self.inits:
            self.graph.initializer.remove(self.inits.pop(name))
        self.graph.initializer.append(numpy_helper.from_array(array, name))

    def apply(self) -> None:
        nodes = []
        for node in self.graph.node:
            if node.name in self.replace:
                nodes.extend(self.replace[node.name])
            elif node.name not in self.drop:
                nodes.append(node)
        del self.graph.node[:]
        self.graph.node.extend(nodes)


def _weights_of(edit: _Rewrite, fp32: dict[str, Any], q_out: str) -> list[tuple[Any, str, Any]]:
    """(user node, weight-scale name, fp32 weights) of every integer operator reading q_out."""
    from onnx import numpy_helper

    found = []
    for user in edit.users.get(q_out, []):
        if user.op_type not in ("MatMulInteger", "QAttention"):
            raise ValueError(f"cannot freeze {q_out}: {user.op_type} {user.name} reads it")
        w_name = user.input[1].removesuffix(_QUANTIZED)
        ws_name = user.input[4] if user.op_type == "QAttention" else w_name + "_scale"
        if w_name not in fp32 or ws_name not in edit.inits:
            raise ValueError(f"cannot freeze {q_out}: weights of {user.name} not found")
        found.append((user, ws_name, numpy_helper.to_array(fp32[w_name])))
    if not found:
        raise ValueError(f"cannot freeze {q_out}: no integer operator reads it")
    return found


def _to_float_matmul(edit: _Rewrite, user: Any, ws_name: str) -> None:
    """MatMulInteger -> Cast -> Mul(a_scale * w_scale) as one MatMulIntegerToFloat."""
    from onnx import helper

    cast = edit.users[user.output[0]][0]
    mul = edit.users[cast.output[0]][0]
    product = edit.producer[mul.input[1]]
    if (cast.op_type, mul.op_type, product.op_type) != ("Cast", "Mul", "Mul") or (
            product.input[1] != ws_name):
        raise ValueError(f"cannot freeze {user.name}: unexpected pattern after it")
    a, w, a_zp, w_zp = user.input
    scale = product.input[0]
    edit.replace[user.name] = [helper.make_node(
        "MatMulIntegerToFloat", [a, w, scale, ws_name, a_zp, w_zp], [mul.output[0]],
        name=user.name + "_float", domain="com.microsoft")]
    edit.drop |= {cast.name, mul.name, product.name}


def freeze_scales(
    dynamic_path: Path, fp32_path: Path, out_path: Path, batches: list[Any], alpha: float,
    weight_bits: int = 7,
) -> int:
    """Write ``out_path``: the dynamic int8 graph with calibrated, smoothed static activation
    scales and its weights requantized to match. Returns how many activations were frozen.

    ``weight_bits`` 7 keeps u8 x s8 products clear of the int16 saturation of AVX2 kernels.
    """
    import onnx
    from onnx import helper

    model = onnx.load(str(dynamic_path))
    fp32 = {i.name: i for i in onnx.load(str(fp32_path)).graph.initializer}
    edit = _Rewrite(model.graph)
    dynamic = [n for n in model.graph.node if n.op_type == "DynamicQuantizeLinear"]
    ranges = channel_ranges(fp32_path, [n.input[0] for n in dynamic], batches)
    for node in dynamic:
        source, (q_out, scale_out, zp_out) = node.input[0], node.output
        users = _weights_of(edit, fp32, q_out)
        lo, hi = (r.astype(np.float64) for r in ranges[source])
        w_max = np.max([np.abs(w).max(axis=1) for _, _, w in users], axis=0)
        frozen = _Frozen.fit(lo, hi, w_max, alpha)
        edit.set(scale_out, np.array(frozen.step, np.float32))
        edit.set(zp_out, np.array(frozen.zero, np.uint8))
        edit.set(source + "_inverse_smooth", (1.0 / frozen.smooth).astype(np.float32))
        for user, ws_name, weights in users:
            wq, w_scales = _requantize(weights, frozen.smooth, weight_bits)
            edit.set(user.input[1], wq)
            edit.set(ws_name, w_scales)
            if user.op_type == "MatMulInteger":
                _to_float_matmul(edit, user, ws_name)
        edit.replace[node.name] = [
            helper.make_node("Mul", [source, source + "_inverse_smooth"], [source + "_smoothed"],
                             name=node.name + "_smooth"),
            helper.make_node("QuantizeLinear", [source + "_smoothed", scale_out, zp_out],
                             [q_out], name=node.name + "_static"),
        ]
    edit.apply()
    onnx.save(model, str(out_path))
    return len(dynamic)
