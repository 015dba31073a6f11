"""Loading the OpenVINO backend sends nothing, forks nothing and writes nothing outside the
workspace: ``import openvino`` would otherwise post a Google Analytics event from a forked
process and keep a client id under ``~/intel`` (``openvino_backend.import_openvino``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from embedops.models.openvino_backend import openvino_available

if not openvino_available():  # not importorskip: importing openvino here would send its telemetry
    pytest.skip("the openvino package is not installed", allow_module_level=True)

PROBE = r"""
import json, sys
events = []
def hook(event, args):
    if event in ("os.fork", "os.posix_spawn", "subprocess.Popen", "socket.getaddrinfo",
                 "socket.connect"):
        events.append(event)
sys.addaudithook(hook)
from embedops.models.openvino_backend import import_openvino
ov = import_openvino()
ov.Core()
import openvino.tools.ovc.telemetry_utils as telemetry_utils
blocked_during = telemetry_utils.tm.__name__
import openvino_telemetry  # importable again once the backend's import is done
print(json.dumps({"events": events, "telemetry": blocked_during,
                  "after": openvino_telemetry.__name__}))
"""


def test_the_backend_imports_openvino_without_its_telemetry(tmp_path: Path) -> None:
    # A fresh HOME with no consent file is where the telemetry sends by default; CI markers
    # switch it off on their own, so they are removed to test the backend's own guard.
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")}
    env["HOME"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["events"] == []  # no process forked, no name looked up, no connection
    assert seen["telemetry"] == "openvino.tools.ovc.telemetry_stub"
    assert seen["after"] == "openvino_telemetry"
    assert not (tmp_path / "intel").exists()  # no client id written into the home folder
