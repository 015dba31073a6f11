"""The 10M compressed-ANN bench runs end to end at a tiny size and reports what it claims."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "scale_10m.py"


def test_scale_10m_tiny_run(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    n, dim = 4000, 32
    done = subprocess.run(
        [sys.executable, str(BENCH), "--n", str(n), "--dim", str(dim), "--queries", "40",
         "--rounds", "1", "--build-threads", "1", "--tmp", str(tmp_path), "--json", str(out)],
        capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert "QPS" in done.stdout and "p99" in done.stdout
    assert report["n"] == n and report["dim"] == dim and report["step"] == n // 100
    # the same cells on both sides; the compressed codes far under flat float32
    assert report["nlist"] > 1
    mem = report["memory"]
    assert 0 < mem["embedops_per_vector"] < mem["flat_fp32_per_vector"] / 2
    assert 0 < mem["faiss_per_vector"] < mem["flat_fp32_per_vector"] / 2
    # both sides reach the target before and after 1% added and 1% deleted, and the engine's
    # index then holds the live items only: the base segment less the deletes, plus the new
    for part in ("before", "after"):
        for side in ("embedops", "faiss"):
            found = report[part][side]
            assert found["recall"] >= 0.95, (part, side, found)
            assert found["single_recall"] >= 0.95, (part, side, found)
            assert found["batch"]["qps"] > 0 and found["single"]["p99_ms"] > 0
    assert "recall_at_previous" in report["after"]["embedops"]
    # plain and segmented indexes are both probed from 1 cell (see first_probe)
    assert report["before"]["nprobe_floor"] == report["after"]["nprobe_floor"] == 1
    assert report["after"]["embedops"]["nprobe"] >= 1
    assert sum(live for _, live in report["layout"]) == n
    assert report["faiss_removed"] == n // 100
    assert report["refresh_new_s"] > 0 and report["refresh_delete_s"] > 0
    assert set(report["peak_memory"]) >= {"ingest", "engine_build", "faiss_build", "churn"}
