"""The static path starts light (cold start of ``embedops serve``): importing the CLI, creating
the server's app for a workspace with only a static model and answering its first
``/v1/embeddings`` request import none of the heavy libraries a static model does not need, nor
the web console, which is loaded on its first ``/ui`` request and then answers as usual. Run in
a fresh interpreter, so nothing imported by other tests counts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from embedops.config import Workspace
from embedops.models.registry import Registry
from embedops.models.static import StaticVectors, publish_static
from embedops.text.tokenize import TokenizerSpec

HEAVY = ("torch", "sentence_transformers", "transformers", "onnxruntime", "sklearn", "plotly",
         "pandas", "umap", "ray", "gensim", "jinja2", "embedops.serve.console")

PROBE = """
import json, sys
from embedops.cli.main import main  # the CLI, as `embedops serve` imports it
from fastapi.testclient import TestClient
from embedops.serve.app import create_app
from embedops.serve.settings import ServeSettings

heavy = json.loads(sys.argv[2])
app = create_app(ServeSettings(home=sys.argv[1], auth=False))
with TestClient(app) as client:
    answer = client.post("/v1/embeddings", json={"model": "tiny", "input": ["a red fox"]})
    before = sorted(m for m in heavy if m in sys.modules)
    login = client.get("/ui/login", follow_redirects=False)
    overview = client.get("/ui/overview")
    missing = client.get("/ui/nowhere")
print(json.dumps({"status": answer.status_code, "dim": len(answer.json()["data"][0]["embedding"]),
                  "before": before, "console": "embedops.serve.console" in sys.modules,
                  "login": [login.status_code, login.headers.get("location")],
                  "overview": [overview.status_code, "<title>Overview" in overview.text],
                  "missing": missing.status_code}))
"""


def test_static_start_imports_nothing_heavy_and_the_console_loads_on_demand(
        workspace: Workspace) -> None:
    vocab = ["a", "red", "fox", "lazy", "dog"]
    vectors = np.random.default_rng(0).standard_normal((len(vocab), 8)).astype(np.float32)
    publish_static(Registry(workspace), "tiny", StaticVectors(vocab, vectors), kind="word2vec",
                   spec=TokenizerSpec())
    out = subprocess.run([sys.executable, "-c", PROBE, str(workspace.home), json.dumps(HEAVY)],
                         capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.splitlines()[-1])
    assert (got["status"], got["dim"]) == (200, 8)
    assert got["before"] == []  # nothing heavy, and no console, before the first /ui request
    assert got["console"]  # loaded by the first /ui request, which it then answered
    assert got["login"] == [303, "/ui/overview"]  # auth off: no sign-in, as always
    assert got["overview"] == [200, True] and got["missing"] == 404
