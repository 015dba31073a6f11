"""The merge rate (issue 19: merges rate-limited so serving p99 holds) is set per call, not only
by ``$EMBEDOPS_MERGE_RATE``: ``refresh_index`` / ``merge_index(merge_rate=...)``, the CLI's
``--merge-rate`` and the HTTP body's ``merge_rate``. A call's rate wins over the environment's;
a bad rate is refused with a clear error (422 over HTTP) and nothing is published."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
from serve_helpers import publish_lee_model, running_server

from embedops.cli.main import main
from embedops.config import Workspace
from embedops.engine import Embedops
from embedops.index import merge_policy
from embedops.serve.app import create_app
from embedops.serve.settings import ServeSettings

DIM = 32


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[float]]:
    ws = Workspace(tmp_path / "ws").ensure()
    publish_lee_model(ws)
    rng = np.random.default_rng(5)
    with Embedops(ws) as api:
        api.collections.create("paced", model="lee")
        api.upsert_items("paced", [{"id": f"d{i}", "text": f"t {i}"} for i in range(1200)],
                         vectors=rng.standard_normal((1200, DIM)).astype(np.float32))
        api.build_index("paced", "flat", quiet=True)
    now, sleeps = [0.0], []  # a clock that moves only when a build sleeps

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(merge_policy, "_clock", lambda: now[0])
    monkeypatch.setattr(merge_policy, "_sleep", sleep)
    monkeypatch.setenv("EMBEDOPS_MERGE_CHUNK", "200")
    monkeypatch.setenv("EMBEDOPS_MERGE_RATE", "0")
    return ws.home, now


def _write(api: Embedops, first: int, n: int) -> None:
    rng = np.random.default_rng(first)
    api.upsert_items("paced", [{"id": f"n{i}", "text": f"t {i}"}
                               for i in range(first, first + n)],
                     vectors=rng.standard_normal((n, DIM)).astype(np.float32))


def test_the_calls_rate_paces_the_build(home: tuple[Path, list[float]]) -> None:
    path, now = home
    with Embedops(Workspace(path)) as api:
        _write(api, 0, 600)
        out = api.refresh_index("paced", merge_rate=300)  # 600 new vectors, 200 at a time
        assert out["added"] == 600
        assert now[0] == pytest.approx(400 / 300)  # the 2nd and 3rd chunks wait their turn
        assert out["throttled_s"] == pytest.approx(now[0], abs=1e-3)
        before = now[0]
        merged = api.merge_index("paced", merge_rate=0)  # 0: unlimited, whatever the env says
        assert merged["segments"] == 1 and now[0] == before
        with pytest.raises(Exception, match="merge rate must be a number of vectors"):
            api.merge_index("paced", merge_rate=-1)
        assert api.index_status("paced")["snapshot"]["name"] == merged["name"]


def test_cli_and_http_take_the_rate(home: tuple[Path, list[float]],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    path, now = home
    with Embedops(Workspace(path)) as api:
        _write(api, 0, 400)
    assert main(["--home", str(path), "index", "refresh", "paced", "--merge-rate", "200",
                 "--json"]) in (0, None)
    assert now[0] == pytest.approx(200 / 200)
    assert main(["--home", str(path), "index", "merge", "paced", "--merge-rate", "-5"]) != 0
    assert "--merge-rate" in capsys.readouterr().err
    settings = ServeSettings(home=str(path), auth=False)
    with running_server(create_app(settings)) as base, \
            httpx.Client(base_url=base, timeout=60) as http:
        bad = http.post("/v1/collections/paced/index/merge", json={"merge_rate": -1})
        assert bad.status_code == 422 and "merge_rate" in bad.text
        bad = http.post("/v1/collections/paced/index/refresh", json={"merge_rate": "fast"})
        assert bad.status_code == 422
        with Embedops(Workspace(path)) as api:
            _write(api, 1000, 400)
        before = now[0]
        done = http.post("/v1/collections/paced/index/refresh", json={"merge_rate": 400})
        assert done.status_code == 200, done.text
        assert done.json()["added"] == 400 and now[0] - before == pytest.approx(200 / 400)
