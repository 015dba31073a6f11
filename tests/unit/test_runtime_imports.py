"""Loading the transformer runtimes sends nothing, forks nothing and writes nothing outside the
workspace (``models.runtime_imports``): by default ``import openvino`` posts a Google Analytics
event from a forked process and keeps a client id under ``~/intel``, and ONNX Runtime keeps a
device id and an event cache under ``~/.cache/Microsoft`` for upload to Microsoft."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from embedops.models.runtime_imports import ORT_TELEMETRY_VARIABLE

# find_spec, not importorskip: importing a runtime in this process would send its telemetry
needs = {name: pytest.mark.skipif(importlib.util.find_spec(name) is None,
                                  reason=f"the {name} package is not installed")
         for name in ("openvino", "onnxruntime")}

HOOK = r"""
import json, sys
events = []
def hook(event, args):
    if event in ("os.fork", "os.posix_spawn", "subprocess.Popen", "socket.getaddrinfo",
                 "socket.connect"):
        events.append(event)
sys.addaudithook(hook)
"""

OPENVINO = HOOK + r"""
from embedops.models.runtime_imports import import_openvino
ov = import_openvino()
ov.Core()
import openvino.tools.ovc.telemetry_utils as telemetry_utils
blocked_during = telemetry_utils.tm.__name__
import openvino_telemetry  # importable again once the backend's import is done
print(json.dumps({"events": events, "telemetry": blocked_during,
                  "after": openvino_telemetry.__name__}))
"""

ONNXRUNTIME = HOOK + r"""
import os
from embedops.models.runtime_imports import import_onnxruntime
import numpy as np, onnx
from onnx import TensorProto, helper
graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
ort = import_onnxruntime()
session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
session.run(None, {"x": np.ones(1, np.float32)})
print(json.dumps({"events": events, "variable": os.environ.get("ORT_DISABLE_TELEMETRY")}))
"""


def _probe(code: str, home: Path, **extra: str) -> dict[str, object]:
    # A fresh HOME with no consent file is where the runtimes report by default; CI markers
    # switch some of it off on their own, so they are removed to test embedops' own guard.
    env = {k: v for k, v in os.environ.items()
           if k not in ("CI", "TF_BUILD", "JENKINS_URL", "GITHUB_ACTIONS", ORT_TELEMETRY_VARIABLE)}
    env.update(HOME=str(home), **extra)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@needs["openvino"]
def test_openvino_is_imported_without_its_telemetry(tmp_path: Path) -> None:
    seen = _probe(OPENVINO, tmp_path)
    assert seen["events"] == []  # no process forked, no name looked up, no connection
    assert seen["telemetry"] == "openvino.tools.ovc.telemetry_stub"
    assert seen["after"] == "openvino_telemetry"
    assert list(tmp_path.iterdir()) == []  # no ~/intel client id


@needs["onnxruntime"]
def test_onnxruntime_runs_without_its_telemetry(tmp_path: Path) -> None:
    seen = _probe(ONNXRUNTIME, tmp_path)
    assert seen == {"events": [], "variable": "1"}
    assert list(tmp_path.iterdir()) == []  # no ~/.cache/Microsoft device id or event cache


@needs["onnxruntime"]
def test_a_telemetry_choice_the_process_made_stands(tmp_path: Path) -> None:
    seen = _probe(ONNXRUNTIME, tmp_path, **{ORT_TELEMETRY_VARIABLE: "0"})
    assert seen["variable"] == "0"
    assert (tmp_path / ".cache" / "Microsoft").is_dir()  # what the default above keeps away
