"""OpenVINO CPU inference of an ONNX file (the optional ``openvino`` extra).

OpenVINO compiles the QDQ int8 copy (``onnx_qdq``) into integer kernels (VNNI / AMX where the
CPU has them), fuses the float parts of the graph itself and runs them in the CPU's default
inference precision (bfloat16 where the CPU computes it natively, else float32; the quality
gate at export measures the result). The model is compiled with one stream per worker, one
thread each: the encoder runs that many batches at once, which on a small machine beats one
batch spread over every core (no barrier between threads at every operator). Threads are not
pinned, since an embedding service shares its machine. An ``InferRequest`` is not
thread-safe, so each calling thread gets its own.

``openvino`` is imported with its usage telemetry off (``runtime_imports``).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from embedops.errors import DependencyMissing, InvalidInput
from embedops.models.onnx_backend import require_onnx_file
from embedops.models.runtime_imports import import_openvino


def openvino_available() -> bool:
    """Whether the ``openvino`` package can be imported."""
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


class OpenVinoRunner:
    """An OpenVINO CPU model returning the last hidden state of a padded batch.

    ``workers`` batches may run at once (from as many threads), each on one core.
    """

    def __init__(self, path: Path, workers: int = 1, precision: str | None = None) -> None:
        try:
            ov = import_openvino()
        except ImportError as exc:
            raise DependencyMissing("openvino", "the OpenVINO backend") from exc
        require_onnx_file(path)
        if workers < 1:
            raise InvalidInput(f"workers must be >= 1, got {workers}")
        core = ov.Core()
        config: dict[str, Any] = {
            "NUM_STREAMS": workers,
            "INFERENCE_NUM_THREADS": workers,
            "ENABLE_CPU_PINNING": False,
        }
        if precision is not None:
            config["INFERENCE_PRECISION_HINT"] = precision
        self.compiled: Any = core.compile_model(core.read_model(str(path)), "CPU", config)
        hint = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        self.precision = str(hint.to_string() if hasattr(hint, "to_string") else hint)
        self.inputs = tuple(i.get_any_name() for i in self.compiled.inputs)
        self.workers = workers
        self._local = threading.local()

    def run(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Hidden states ``(batch, seq, dim)`` for ``input_ids``/``attention_mask``(/types)."""
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        result = request.infer({name: arrays[name] for name in self.inputs})
        # the output buffer belongs to the request and is overwritten by its next run
        return np.array(result[0], dtype=np.float32, copy=True)
