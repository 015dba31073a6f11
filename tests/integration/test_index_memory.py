"""The RAM each index kind holds is reported (issue 19): ``index status`` of a served index
gives ``memory_bytes`` (the structure FAISS keeps: vectors or codes, graph, id map, plus the
overlay), which follows the backend's bytes per vector: flat holds the float32 rows, sq8 a
quarter of them, hnsw the rows plus its graph; ``embedops index status --memory`` loads the
index and prints it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from serve_helpers import publish_lee_model

from embedops.cli.main import main
from embedops.config import Workspace
from embedops.engine import Embedops

N, DIM = 3000, 32  # the lee model's dimension


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = Workspace(tmp_path_factory.mktemp("memory") / "ws").ensure()
    publish_lee_model(ws)
    rng = np.random.default_rng(3)
    with Embedops(ws) as api:
        for kind in ("flat", "sq8", "hnsw"):
            api.collections.create(kind, model="lee")
            vectors = rng.standard_normal((N, DIM)).astype(np.float32)
            api.upsert_items(kind, [{"id": f"d{i}", "text": f"t {i}"} for i in range(N)],
                             vectors=vectors)
            api.build_index(kind, kind, quiet=True)
    return ws.home


def test_status_reports_each_kinds_memory(home: Path) -> None:
    with Embedops(Workspace(home)) as api:
        assert api.index_status("flat")["served"] is None  # not loaded in this process yet
        got = {k: api.index_status(k, load=True)["served"]["memory_bytes"]
               for k in ("flat", "sq8", "hnsw")}
    rows = N * DIM * 4
    assert rows <= got["flat"] <= rows + N * 16  # the rows plus an id map
    assert got["sq8"] < 0.4 * got["flat"]  # one byte a dimension
    assert got["hnsw"] > got["flat"]  # the rows plus the graph's links


def test_cli_prints_the_memory(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--home", str(home), "index", "status", "sq8", "--memory"]) in (0, None)
    out = capsys.readouterr().out
    assert "in memory:" in out and "bytes per item" in out
    assert main(["--home", str(home), "index", "status", "sq8"]) in (0, None)
    assert "in memory:" not in capsys.readouterr().out
