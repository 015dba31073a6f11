"""The inference runtimes, imported with their telemetry off.

Two of the runtimes the transformer backends use report on their users by default:

* ONNX Runtime (1.29 and later, outside Windows) keeps a device id and an event cache under
  ``~/.cache/Microsoft`` and uploads usage events to Microsoft's collector, unless
  ``ORT_DISABLE_TELEMETRY`` is set before it starts.
* ``import openvino`` imports its model converter, whose telemetry (``openvino_telemetry``)
  writes a client id under ``~/intel`` and posts an event to Google Analytics from a process it
  forks off a thread while this process goes on loading the model. Where the connection hangs,
  that child outlives its parent holding every file the parent had open.

An embedding service sends nothing anywhere and writes nothing outside its workspace, so every
import of either runtime goes through this module. A choice the process made before (the
variable already set, the package already imported) stands.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from types import ModuleType

ORT_TELEMETRY_VARIABLE = "ORT_DISABLE_TELEMETRY"
_OPENVINO_TELEMETRY = "openvino_telemetry"
_LOCK = threading.Lock()


def import_onnxruntime() -> ModuleType:
    """``onnxruntime``, with ``ORT_DISABLE_TELEMETRY=1`` set first unless the process set it."""
    os.environ.setdefault(ORT_TELEMETRY_VARIABLE, "1")
    return importlib.import_module("onnxruntime")


def import_openvino() -> ModuleType:
    """``openvino``, imported while ``openvino_telemetry`` cannot be, so that its converter takes
    its own no-op stand-in; the block is lifted afterwards."""
    with _LOCK:
        if "openvino" in sys.modules:
            return importlib.import_module("openvino")
        block = _OPENVINO_TELEMETRY not in sys.modules
        if block:
            sys.modules[_OPENVINO_TELEMETRY] = None  # type: ignore[assignment]  # import raises
        try:
            return importlib.import_module("openvino")
        finally:
            if block and sys.modules.get(_OPENVINO_TELEMETRY, ...) is None:
                del sys.modules[_OPENVINO_TELEMETRY]
