"""OpenVINO CPU inference of an ONNX file (the optional ``openvino`` extra).

OpenVINO compiles the QDQ int8 copy (``onnx_qdq``) into integer kernels (VNNI / AMX where the
CPU has them), fuses the float parts of the graph itself and runs them in the CPU's default
inference precision (bfloat16 where the CPU computes it natively, else float32; the quality
gate at export measures the result). The model is compiled with one stream per worker, one
thread each: the encoder runs that many batches at once, which on a small machine beats one
batch spread over every core (no barrier between threads at every operator). Threads are not
pinned, since an embedding service shares its machine. An ``InferRequest`` is not
thread-safe, so each calling thread gets its own.

``openvino`` is imported with its usage telemetry off (``import_openvino``). Importing the
package imports its model converter, whose telemetry (the ``openvino_telemetry`` package) by
default writes a client id under ``~/intel`` and posts an event to Google Analytics from a
process it forks off a thread, while this process goes on compiling the model on others. An
embedding service must not send anything anywhere, write outside its workspace, or fork in the
middle of a multi-threaded load; the converter has a no-op stand-in for when that package
cannot be imported, which is what the import arranges.
"""

from __future__ import annotations

import importlib
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from embedops.errors import DependencyMissing, InvalidInput
from embedops.models.onnx_backend import require_onnx_file

_TELEMETRY = "openvino_telemetry"
_IMPORT_LOCK = threading.Lock()


def import_openvino() -> ModuleType:
    """The ``openvino`` module, imported with its usage telemetry off (see the module
    docstring): while it imports, ``openvino_telemetry`` cannot be imported, so its converter
    takes its own no-op stand-in; the block is lifted afterwards. Where another part of the
    process imported ``openvino`` first, that import stands as it was made."""
    with _IMPORT_LOCK:
        if "openvino" in sys.modules:
            return importlib.import_module("openvino")
        block = _TELEMETRY not in sys.modules
        if block:
            sys.modules[_TELEMETRY] = None  # type: ignore[assignment]  # import raises
        try:
            return importlib.import_module("openvino")
        finally:
            if block and sys.modules.get(_TELEMETRY, ...) is None:
                del sys.modules[_TELEMETRY]


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
