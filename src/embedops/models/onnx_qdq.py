"""Static int8 in QDQ form (QuantizeLinear / DequantizeLinear around each weight MatMul), for
runtimes that compile QDQ graphs into integer kernels (OpenVINO's CPU plugin).

The input is the plain export (``torch.onnx.export``, before ONNX Runtime's fusion, whose
contrib operators other runtimes do not read). Every ``MatMul`` whose second input is a 2-D
weight initializer (the model's linear layers; attention's activation-by-activation products
stay in float) gets:

* its activation smoothed and quantized with static constants calibrated on real text (the
  same SmoothQuant migration and real-token ranges as ``onnx_static``): ``Mul(1/s)`` then
  uint8 ``QuantizeLinear`` / ``DequantizeLinear`` with one scale per tensor, so a text's vector
  does not depend on its batch;
* its weights multiplied by ``s`` per input row and quantized to int8 symmetric per output
  column (``DequantizeLinear`` with ``axis=1``).

Activations shared by several layers (a layer norm's output feeding Q, K and V) are smoothed
once, with the largest weight magnitude over those layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedops.models.onnx_static import _Frozen, channel_ranges


@dataclass
class _Site:
    """One activation and the weight MatMuls that read it."""

    index: int
    activation: str
    users: list[Any]


def _sites(graph: Any, skip: tuple[str, ...]) -> list[_Site]:
    inits = {i.name: i for i in graph.initializer}
    by_act: dict[str, list[Any]] = {}
    for node in graph.node:
        if (node.op_type == "MatMul" and node.input[1] in inits
                and len(inits[node.input[1]].dims) == 2
                and not any(p in node.name for p in skip)):
            by_act.setdefault(node.input[0], []).append(node)
    return [_Site(i, act, users) for i, (act, users) in enumerate(by_act.items())]


def quantize_weights(weights: np.ndarray, bits: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-column int8 of ``weights`` (in, out) with a ``bits``-bit range:
    (quantized, scales)."""
    top = 2 ** (bits - 1) - 1
    scales = np.abs(weights).max(axis=0) / top
    scales[scales == 0] = 1.0
    q = np.clip(np.round(weights / scales), -top, top).astype(np.int8)
    return q, scales.astype(np.float32)


def build_qdq(
    fp32_path: Path, out_path: Path, batches: list[Any], alpha: float, weight_bits: int = 8,
    skip: tuple[str, ...] = (),
) -> int:
    """Write the QDQ int8 copy of the plain export ``fp32_path`` to ``out_path``, calibrated on
    ``batches`` (real tokens only); node names containing a ``skip`` pattern stay float.
    Returns how many activations were quantized."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(fp32_path))
    graph = model.graph
    sites = _sites(graph, skip)
    if not sites:
        raise ValueError("no MatMul with 2-D weights to quantize")
    ranges = channel_ranges(fp32_path, [s.activation for s in sites], batches)
    inits = {i.name: i for i in graph.initializer}
    inserted: dict[str, list[Any]] = {}
    added = []
    for site in sites:
        i, act = site.index, site.activation
        weights = [numpy_helper.to_array(inits[n.input[1]]).astype(np.float64)
                   for n in site.users]
        lo, hi = (r.astype(np.float64) for r in ranges[act])
        w_max = np.max([np.abs(w).max(axis=1) for w in weights], axis=0)
        frozen = _Frozen.fit(lo, hi, w_max, alpha)
        nodes, source = [], act
        if alpha:
            added.append(numpy_helper.from_array((1.0 / frozen.smooth).astype(np.float32),
                                                 f"qdq{i}_inverse_smooth"))
            nodes.append(helper.make_node("Mul", [act, f"qdq{i}_inverse_smooth"],
                                          [f"qdq{i}_smoothed"], name=f"qdq{i}_smooth"))
            source = f"qdq{i}_smoothed"
        added += [numpy_helper.from_array(np.array(frozen.step, np.float32), f"qdq{i}_scale"),
                  numpy_helper.from_array(np.array(frozen.zero, np.uint8), f"qdq{i}_zero")]
        quant = [f"qdq{i}_scale", f"qdq{i}_zero"]
        nodes += [helper.make_node("QuantizeLinear", [source, *quant], [f"qdq{i}_q"],
                                   name=f"qdq{i}_quantize"),
                  helper.make_node("DequantizeLinear", [f"qdq{i}_q", *quant], [f"qdq{i}_x"],
                                   name=f"qdq{i}_dequantize")]
        for j, user in enumerate(site.users):
            q, scales = quantize_weights(weights[j] * frozen.smooth[:, None], weight_bits)
            w = f"qdq{i}_w{j}"
            added += [numpy_helper.from_array(q, f"{w}_q"),
                      numpy_helper.from_array(scales, f"{w}_scale"),
                      numpy_helper.from_array(np.zeros(len(scales), np.int8), f"{w}_zero")]
            nodes.append(helper.make_node("DequantizeLinear", [f"{w}_q", f"{w}_scale",
                                                               f"{w}_zero"], [w], axis=1,
                                          name=f"{w}_dequantize"))
            user.input[0], user.input[1] = f"qdq{i}_x", w
        inserted[site.users[0].output[0]] = nodes
    ordered = []
    for node in graph.node:
        ordered.extend(inserted.get(node.output[0], []) if node.output else [])
        ordered.append(node)
    del graph.node[:]
    graph.node.extend(ordered)
    used = {name for node in graph.node for name in node.input}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept + added)
    onnx.save(model, str(out_path))
    return len(sites)
