"""The shipped Prometheus rules and Grafana dashboard only name metrics a real server exports:
start the app on a tiny collection, exercise it (search, embed, an error, a golden run, a drift
check), scrape /metrics and compare names (histogram and summary suffixes handled)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
import yaml
from serve_helpers import running_server
from test_monitor_http import lee_workspace, monitored_app

from embedops.serve.settings import ServeSettings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NAME = re.compile(r"\bembedops_[a-z0-9_]+")
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count", "_created"),
            "summary": ("_sum", "_count", "_created"), "counter": ("_total", "_created")}


def exported_names(text: str) -> set[str]:
    """Every series name an exposition can hold, from its TYPE lines and its samples."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            names.add(name)
            names.update(name + s for s in SUFFIXES.get(kind, ()))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def rule_expressions() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus-alerts.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    assert any("alert" in r for g in rules["groups"] for r in g["rules"])
    return exprs


def dashboard_expressions() -> list[str]:
    dash = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    rows = [p["title"] for p in dash["panels"] if p["type"] == "row"]
    assert rows == ["Executive", "On-call", "Debug"]
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> str:
    ws, docs = lee_workspace(tmp_path_factory.mktemp("deploy"), "tiny", 40, "flat")
    app = monitored_app(ServeSettings(home=str(ws.home), auth=False))
    with running_server(app) as base, httpx.Client(base_url=base, timeout=60) as c:
        c.post("/v1/collections/tiny/search", json={"query": "fire", "k": 3})
        c.post("/v1/embed", json={"texts": ["bush fire", "bush fire"]})
        c.post("/v1/collections/nope/search", json={"query": "fire"})
        c.post("/v1/golden", json={"name": "g", "collection": "tiny"})
        c.post("/v1/golden/g/queries", json={"queries": [
            {"query": d["text"][:80], "relevant": [d["id"]]} for d in docs[:5]]})
        c.post("/v1/golden/g/run", params={"collection": "tiny"})
        texts = [d["text"] for d in docs]
        c.post("/v1/collections/tiny/drift",
               json={"reference": {"texts": texts[:20]}, "current": {"texts": texts[20:]}})
        return c.get("/metrics").text


@pytest.mark.parametrize("source", ["prometheus-alerts.yml", "grafana-dashboard.json"])
def test_every_named_metric_is_exported(scraped: str, source: str) -> None:
    exprs = rule_expressions() if source.endswith(".yml") else dashboard_expressions()
    named = {m for e in exprs for m in NAME.findall(e)}
    assert {"embedops_golden_recall", "embedops_drift_detected",
            "embedops_index_freshness_age_seconds"} <= named
    missing = sorted(named - exported_names(scraped))
    assert not missing, f"{source} names metrics the server does not export: {missing}"


def test_exported_names_parser_sees_suffixes() -> None:
    text = ("# TYPE embedops_x_seconds histogram\nembedops_x_seconds_bucket{le=\"1\"} 1\n"
            "# TYPE embedops_y counter\n")
    names = exported_names(text)
    assert {"embedops_x_seconds_count", "embedops_y_total"} <= names
    assert "embedops_z" not in names
