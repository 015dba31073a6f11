"""ONNX Runtime inference for transformer encoders, built offline from the local model files.

``build_onnx`` exports the Hugging Face model with ``torch.onnx.export`` (TorchScript exporter,
dynamic batch and sequence axes), fuses it for ONNX Runtime (attention, GELU, skip-layer-norm
fusion from ``onnxruntime.transformers.optimizer``) and writes an int8 copy: weights per
channel, activations either with static scales calibrated on real text and smoothed
(``onnx_static``; the default, so a text's vector does not depend on its batch) or dynamic
(measured per batch; opt-in). Where the ``openvino`` extra is installed it also writes a QDQ
int8 copy of the plain export (``onnx_qdq``: the same smoothed static scales, 8-bit weights) for
OpenVINO, the fastest CPU path measured. Each int8 copy is kept only if it passes the quality
gate (``quality_gate``: mean cosine to fp32 on held-out texts, a text alone vs in a batch, and
recall@10 on a small labelled search task). ``OnnxRunner`` runs a file on the CPU with the
session options that were fastest on a 2-core machine (see docs/benchmarks/encode.md).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedops.errors import DependencyMissing, IntegrityError, InvalidInput
from embedops.models.runtime_imports import import_onnxruntime

ONNX_DIR = "onnx"
FP32_FILE = f"{ONNX_DIR}/model.onnx"
INT8_FILE = f"{ONNX_DIR}/model_int8.onnx"
QDQ_FILE = f"{ONNX_DIR}/model_qdq.onnx"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
#: Encoder families whose graph ONNX Runtime's BERT fusion recognises.
_FUSABLE = ("bert", "roberta", "xlm-roberta", "distilbert", "camembert", "electra")


ACTIVATIONS = ("static", "dynamic")


@dataclass(frozen=True)
class QuantizeConfig:
    """How the int8 copy is made.

    ``op_types``: operators quantized (``Attention`` is the fused attention, whose QKV
    projection becomes int8); ``exclude_patterns``: node-name substrings kept in fp32;
    ``activations``: ``static`` (calibrated scales, batch-invariant) or ``dynamic`` (per batch);
    ``smooth_alpha``: SmoothQuant's migration strength for static scales (0: no smoothing);
    ``static_weight_bits``: the weights' range for static scales (7 avoids AVX2 saturation);
    ``calibration_texts``: texts the static scales are calibrated on; ``min_cosine``: the
    least mean cosine to fp32 on held-out texts for an int8 copy to be kept;
    ``min_batch_cosine``: the least cosine of a text alone to itself in a batch;
    ``max_recall_drop``: the most golden recall@10 may fall; ``openvino``: also write the QDQ
    int8 copy for OpenVINO (when the package is installed); ``qdq_weight_bits``: its weights'
    range.
    """

    per_channel: bool = True
    reduce_range: bool = False
    op_types: tuple[str, ...] = ("MatMul", "Attention")
    exclude_patterns: tuple[str, ...] = ()
    activations: str = "static"
    smooth_alpha: float = 0.75
    static_weight_bits: int = 7
    calibration_texts: int = 256
    min_cosine: float = 0.995
    min_batch_cosine: float = 0.999
    max_recall_drop: float = 0.01
    openvino: bool = True
    qdq_weight_bits: int = 8

    def __post_init__(self) -> None:
        object.__setattr__(self, "op_types", tuple(self.op_types))
        object.__setattr__(self, "exclude_patterns", tuple(self.exclude_patterns))
        if self.activations not in ACTIVATIONS:
            raise InvalidInput(f"unknown activations '{self.activations}'",
                               f"use one of {', '.join(ACTIVATIONS)}")
        if not 0.0 <= self.smooth_alpha <= 1.0:
            raise InvalidInput(f"smooth_alpha must be in [0, 1], got {self.smooth_alpha}")
        for name in ("static_weight_bits", "qdq_weight_bits"):
            if getattr(self, name) not in (7, 8):
                raise InvalidInput(f"{name} must be 7 or 8, got {getattr(self, name)}")
        if self.calibration_texts < 8:
            raise InvalidInput(f"calibration_texts must be >= 8, got {self.calibration_texts}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``QuantizeConfig(**d)`` rebuilds it."""
        return {
            "per_channel": self.per_channel,
            "reduce_range": self.reduce_range,
            "op_types": list(self.op_types),
            "exclude_patterns": list(self.exclude_patterns),
            "activations": self.activations,
            "smooth_alpha": self.smooth_alpha,
            "static_weight_bits": self.static_weight_bits,
            "calibration_texts": self.calibration_texts,
            "min_cosine": self.min_cosine,
            "min_batch_cosine": self.min_batch_cosine,
            "max_recall_drop": self.max_recall_drop,
            "openvino": self.openvino,
            "qdq_weight_bits": self.qdq_weight_bits,
        }

    @property
    def bar(self) -> Any:
        """The quality gate's bar (``quality_gate.GateBar``)."""
        from embedops.models.quality_gate import GateBar

        return GateBar(self.min_cosine, self.min_batch_cosine, self.max_recall_drop)


def _offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def _load_hf(model_dir: Path) -> Any:
    _offline()
    try:
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise DependencyMissing("transformers", "exporting a transformer to ONNX") from exc
    hf_logging.disable_progress_bar()
    # eager attention traces into plain MatMul/Softmax, which the fusion pass recognises.
    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager")
    model.eval()
    return model


def export_onnx(model_dir: Path, out_path: Path) -> tuple[str, ...]:
    """Export the model in ``model_dir`` to ``out_path`` (fp32, last hidden state output).

    Returns the input names the graph takes (``token_type_ids`` only if the model has it).
    """
    import inspect

    import torch

    model = _load_hf(model_dir)
    accepted = inspect.signature(model.forward).parameters
    names = tuple(n for n in INPUT_NAMES if n in accepted)

    class _Hidden(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: Any) -> Any:
            return self.inner(**dict(zip(names, args, strict=True))).last_hidden_state

    dummy = tuple(torch.ones(2, 8, dtype=torch.long) for _ in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in (*names, "last_hidden_state")}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Hidden(model), dummy, str(out_path), input_names=list(names),
            output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17,
            dynamo=False,
        )
    return names


def fuse_onnx(raw_path: Path, out_path: Path, model_dir: Path) -> bool:
    """Write an ORT-fused copy of ``raw_path`` to ``out_path``; False (plain copy) if unfusable."""
    config = json.loads((model_dir / "config.json").read_text())
    if config.get("model_type") not in _FUSABLE:
        out_path.write_bytes(raw_path.read_bytes())
        return False
    import_onnxruntime()
    from onnxruntime.transformers.optimizer import optimize_model

    heads = int(config.get("num_attention_heads", config.get("n_heads", 0)))
    hidden = int(config.get("hidden_size", config.get("dim", 0)))
    fused = optimize_model(
        str(raw_path), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=1
    )
    fused.save_model_to_file(str(out_path))
    return True


def _quiet_quantizer(record: logging.LogRecord) -> bool:
    return "pre-processing before quantization" not in record.getMessage()


def quantize_onnx(fp32_path: Path, out_path: Path, config: QuantizeConfig) -> list[str]:
    """Dynamic int8 quantization of the MatMuls; returns the node names kept in fp32."""
    import onnx

    import_onnxruntime()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(fp32_path), load_external_data=False).graph
    excluded = [
        n.name for n in graph.node
        if n.op_type in config.op_types and any(p in n.name for p in config.exclude_patterns)
    ]
    root = logging.getLogger()
    root.addFilter(_quiet_quantizer)  # it logs a pre-processing hint on the root logger
    try:
        quantize_dynamic(
            str(fp32_path), str(out_path), op_types_to_quantize=list(config.op_types),
            per_channel=config.per_channel, reduce_range=config.reduce_range,
            weight_type=QuantType.QInt8, nodes_to_exclude=excluded or None,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        root.removeFilter(_quiet_quantizer)
    return excluded


def build_onnx(
    model_dir: Path, out_dir: Path, quantize: QuantizeConfig | None = None
) -> dict[str, Any]:
    """Write ``onnx/model.onnx`` (fused fp32) and, if they pass the gate,
    ``onnx/model_int8.onnx`` (ONNX Runtime) and ``onnx/model_qdq.onnx`` (OpenVINO) under
    ``out_dir``.

    ``out_dir`` is a staging folder (a registry draft), so a failure publishes nothing.
    Returns what the manifest records about the build (``int8.accepted``, ``qdq.accepted`` and
    the gate's figures; a refused copy is logged and its file removed).
    """
    quantize = quantize or QuantizeConfig()
    raw = out_dir / ONNX_DIR / "raw.onnx"
    names = export_onnx(model_dir, raw)
    try:
        fused = fuse_onnx(raw, out_dir / FP32_FILE, model_dir)
        excluded = quantize_onnx(out_dir / FP32_FILE, out_dir / INT8_FILE, quantize)
        int8: dict[str, Any] = {**quantize.to_dict(), "kept_fp32": excluded}
        gate = _gate(model_dir, out_dir)
        int8.update(_calibrate_and_gate(model_dir, out_dir, quantize, gate))
        qdq = _build_qdq(model_dir, out_dir, raw, quantize, gate)
    finally:
        raw.unlink(missing_ok=True)
    return {"inputs": list(names), "fused": fused, "opset": 17, "int8": int8, "qdq": qdq}


def _gate(model_dir: Path, out_dir: Path) -> Any:
    """The quality gate against the fused fp32 file (``quality_gate.Gate``)."""
    from embedops.models.quality_gate import Gate
    from embedops.models.st_pipeline import read_pipeline

    limit = read_pipeline(model_dir).max_seq_length
    return Gate(OnnxRunner(out_dir / FP32_FILE), model_dir, limit)


def _build_qdq(model_dir: Path, out_dir: Path, raw: Path, config: QuantizeConfig, gate: Any
               ) -> dict[str, Any]:
    """The QDQ int8 copy for OpenVINO, gated like the int8 copy (see ``build_onnx``)."""
    from embedops.models.calibration import calibration_texts
    from embedops.models.onnx_qdq import build_qdq
    from embedops.models.openvino_backend import OpenVinoRunner, openvino_available
    from embedops.models.quality_gate import feeds
    from embedops.models.st_pipeline import read_pipeline

    if not config.openvino or config.activations != "static":
        return {"accepted": False, "reason": "not asked for"}
    if not openvino_available():
        return {"accepted": False, "reason": "the openvino package is not installed"}
    limit = read_pipeline(model_dir).max_seq_length
    calib = feeds(model_dir, limit, calibration_texts(config.calibration_texts, seed=0))
    path = out_dir / QDQ_FILE
    try:
        sites = build_qdq(raw, path, calib, config.smooth_alpha, config.qdq_weight_bits,
                          config.exclude_patterns)
    except ValueError as exc:  # a graph without weight MatMuls
        logging.getLogger(__name__).warning("no QDQ int8 copy: %s", exc)
        return {"accepted": False, "reason": str(exc)}
    runner = OpenVinoRunner(path)
    out: dict[str, Any] = {"quantized": sites, "weight_bits": config.qdq_weight_bits,
                           "smooth_alpha": config.smooth_alpha, "precision": runner.precision}
    out["gate"] = gate.measure(runner)
    return _judge(out, config, path, "QDQ int8 copy (OpenVINO)")


def _judge(out: dict[str, Any], config: QuantizeConfig, path: Path, what: str,
           batch: bool = True) -> dict[str, Any]:
    """Accept or refuse a gated copy (a refused file is removed and the refusal logged)."""
    from embedops.models.quality_gate import verdict

    failed = verdict(out["gate"], config.bar, batch)
    out["accepted"] = not failed
    if failed:
        out["reason"] = "; ".join(failed)
        logging.getLogger(__name__).warning(
            "%s refused: %s on held-out texts; it is not used", what, out["reason"])
        path.unlink()
    return out


def _calibrate_and_gate(model_dir: Path, out_dir: Path, config: QuantizeConfig, gate: Any
                        ) -> dict[str, Any]:
    """Freeze static scales (``activations='static'``), then apply the quality gate."""
    from embedops.models.calibration import calibration_texts
    from embedops.models.onnx_static import _feeds, freeze_scales
    from embedops.models.st_pipeline import read_pipeline

    limit = read_pipeline(model_dir).max_seq_length
    int8_path = out_dir / INT8_FILE
    out: dict[str, Any] = {}
    if config.activations == "static":
        calib = _feeds(model_dir, limit, calibration_texts(config.calibration_texts, seed=0))
        dynamic = int8_path.with_name("dynamic.onnx")
        int8_path.rename(dynamic)
        try:
            out["frozen"] = freeze_scales(dynamic, out_dir / FP32_FILE, int8_path, calib,
                                          config.smooth_alpha, config.static_weight_bits)
        except ValueError as exc:  # a graph this rewrite does not know: keep fp32
            logging.getLogger(__name__).warning("no static int8 copy: %s", exc)
            return {"accepted": False, "reason": str(exc)}
        finally:
            dynamic.unlink()
    out["gate"] = gate.measure(OnnxRunner(int8_path))
    # dynamic scales (opt-in, never the default) depend on the batch by design: not gated on it
    return _judge(out, config, int8_path, "int8 copy (ONNX Runtime)",
                  batch=config.activations == "static")


def require_onnx_file(path: Path) -> None:
    """Refuse a runner whose exported model file is gone (a damaged or partial version)."""
    if not path.is_file():
        raise IntegrityError(
            f"ONNX file {path} is missing",
            "re-import the model with 'embedops import --transformer', which exports it",
        )


class OnnxRunner:
    """An ONNX Runtime CPU session returning the last hidden state of a padded batch."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        try:
            ort = import_onnxruntime()
        except ImportError as exc:
            raise DependencyMissing("onnxruntime", "the ONNX backend") from exc
        require_onnx_file(path)
        if threads is not None and threads < 1:
            raise InvalidInput(f"threads must be >= 1, got {threads}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or 0
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.inputs = tuple(i.name for i in self.session.get_inputs())

    def run(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Hidden states ``(batch, seq, dim)`` for ``input_ids``/``attention_mask``(/types)."""
        feed = {name: arrays[name] for name in self.inputs}
        return np.asarray(self.session.run(None, feed)[0], dtype=np.float32)


def onnx_files(root: Path) -> Sequence[str]:
    """The ONNX files present under a version folder (relative paths)."""
    return [rel for rel in (FP32_FILE, INT8_FILE, QDQ_FILE) if (root / rel).is_file()]
