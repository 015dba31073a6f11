"""Query expansion, autocomplete, HDBSCAN clustering and the mapping route end to end on real
data (shipped WordNet glosses, a word2vec model trained on them): Python API, CLI and HTTP,
with role checks and the errors for bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from usecases_data import build, engine_on_copy

from embedops.cli.main import main
from embedops.config import Workspace
from embedops.engine.facade import Embedops
from embedops.errors import InvalidInput, NotFound
from embedops.usecases import autocomplete, cluster, expand

QUERY = "a body of flowing water"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return build(tmp_path_factory.mktemp("usecases-search") / "ws")


@pytest.fixture
def eo(built: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Embedops]:
    yield from engine_on_copy(built.home, tmp_path, monkeypatch)


@pytest.fixture
def client(eo: Embedops) -> Iterator[tuple[Any, dict[str, str], dict[str, str]]]:
    from fastapi.testclient import TestClient

    from embedops.serve.app import create_app
    from embedops.serve.keys import KeyStore
    from embedops.serve.settings import ServeSettings

    keys = KeyStore(eo.workspace)
    read = {"X-API-Key": keys.create("read")[0]}
    write = {"X-API-Key": keys.create("write")[0]}
    app = create_app(ServeSettings(home=str(eo.workspace.home), warmup=False), api=eo)
    with TestClient(app) as c:
        yield c, read, write


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["--quiet", *args])
    out = capsys.readouterr()
    return code, out.out + out.err


# -- query expansion --------------------------------------------------------------------------
def test_expansion_is_weighted_bounded_and_explained(eo: Embedops) -> None:
    opts = expand.ExpandOptions(model="w2v", per_term=2, max_terms=5, min_similarity=0.3,
                                weight=0.5)
    exp = expand.expand(eo, QUERY, opts)
    assert exp.model_version == "w2v@1" and 0 < len(exp.terms) <= 5
    words = set(QUERY.split())
    for t in exp.terms:
        assert t.source in words and t.term not in words and t.similarity >= 0.3
        assert t.weight == pytest.approx(0.5 * t.similarity, abs=1e-3)
        assert [n for n, _ in eo.neighbours("w2v", t.source, 12)].count(t.term) == 1
    assert [t.weight for t in exp.terms] == sorted((t.weight for t in exp.terms), reverse=True)
    per_source = [t.source for t in exp.terms]
    assert all(per_source.count(s) <= 2 for s in per_source)
    assert exp.to_dict()["text"].startswith(QUERY + " ")
    none = expand.expand(eo, QUERY, expand.ExpandOptions(model="w2v", min_similarity=1.0))
    assert none.terms == []


def test_expanded_lexical_search_adds_weighted_terms(eo: Embedops) -> None:
    plain = eo.search("wn", QUERY, 10, "lexical")
    none = expand.search(eo, "wn", QUERY, 10, "lexical", expand_options=expand.ExpandOptions(
        max_terms=0))
    assert [(h.id, round(h.score, 4)) for h in none.response.hits] == \
        [(h.id, round(h.score, 4)) for h in plain.hits]
    opts = expand.ExpandOptions(per_term=3, max_terms=8, min_similarity=0.3)
    found = expand.search(eo, "wn", QUERY, 200, "lexical", expand_options=opts)
    added = [t.term for t in found.expansion.terms]
    assert added and found.response.mode == "lexical"
    before = {h.id: h.score for h in eo.search("wn", QUERY, 1000, "lexical").hits}
    by_terms = {h.id for t in added for h in eo.search("wn", t, 1000, "lexical").hits}
    only_added = [h.id for h in found.response.hits if h.id not in before]
    assert only_added and set(only_added) <= by_terms
    # Added terms only add to an item's score: weights are positive.
    assert all(h.score >= before[h.id] - 1e-6 for h in found.response.hits if h.id in before)
    hybrid = expand.search(eo, "wn", QUERY, 10, "hybrid", expand_options=opts)
    assert len(hybrid.response.hits) == 10 and hybrid.response.model_version == "w2v@1"
    assert hybrid.to_dict()["expansion"]["terms"]


def test_expansion_refuses_bad_input(eo: Embedops) -> None:
    with pytest.raises(InvalidInput, match="lexical or hybrid"):
        expand.search(eo, "wn", QUERY, mode="dense")
    with pytest.raises(InvalidInput, match="query is empty"):
        expand.expand(eo, "  ")
    with pytest.raises(InvalidInput, match="per_term"):
        expand.ExpandOptions(per_term=-1)
    with pytest.raises(NotFound):
        expand.search(eo, "ghost", QUERY)
    with pytest.raises(NotFound):
        expand.expand(eo, QUERY, expand.ExpandOptions(model="nope"))


def test_expansion_cli_and_http(eo: Embedops, client: Any,
                                capsys: pytest.CaptureFixture[str]) -> None:
    http, read, _ = client
    got = http.post("/v1/expand", json={"query": QUERY, "model": "w2v", "min_similarity": 0.3},
                    headers=read)
    assert got.status_code == 200 and got.json()["terms"][0]["weight"] > 0
    assert http.post("/v1/expand", json={"query": QUERY}).status_code == 401
    res = http.post("/v1/collections/wn/expanded-search",
                    json={"query": QUERY, "mode": "lexical", "k": 5,
                          "expand": {"min_similarity": 0.3}}, headers=read)
    assert res.status_code == 200 and len(res.json()["hits"]) == 5
    assert res.json()["expansion"]["terms"]
    bad = http.post("/v1/collections/wn/expanded-search",
                    json={"query": QUERY, "mode": "dense"}, headers=read)
    assert bad.status_code == 422
    ghost = http.post("/v1/collections/ghost/expanded-search", json={"query": QUERY},
                      headers=read)
    assert ghost.status_code == 404
    code, out = _cli(capsys, "expand", QUERY, "--model", "w2v", "--min-similarity", "0.3",
                     "--json")
    assert code == 0 and json.loads(out)["terms"]
    code, out = _cli(capsys, "expanded-search", "wn", QUERY, "--mode", "hybrid", "-k", "3",
                     "--min-similarity", "0.3")
    assert code == 0 and out.startswith("added: ") and len(out.strip().splitlines()) == 4
    code, out = _cli(capsys, "expanded-search", "wn", QUERY, "--mode", "dense")
    assert code != 0 and "lexical or hybrid" in out and "Traceback" not in out


# -- autocomplete -----------------------------------------------------------------------------
def test_autocomplete_vocabulary_context_and_past_queries(eo: Embedops) -> None:
    comp = autocomplete.completer(eo, "wn")
    found = comp.complete("wat", k=5)
    assert found and len(found) <= 5 and all(c.text.startswith("wat") for c in found)
    assert all(c.source == "vocabulary" for c in found)
    assert [c.score for c in found] == sorted((c.score for c in found), reverse=True)
    assert comp.complete("wat", k=5) is found  # answered from the cache
    ctx = comp.complete("flowing wat", k=3)
    assert ctx and all(c.text.startswith("flowing wat") for c in ctx)
    assert any(c.similarity != 0 for c in ctx)
    assert autocomplete.record(eo, "wn", ["Flowing  water", "flowing water mill", " "]) == 2
    after = comp.complete("flowing wat", k=3)
    assert after is not ctx and after[0].text in ("flowing water", "flowing water mill")
    assert "query" in {c.source for c in after}
    nxt = comp.complete("flowing water ", k=3)
    assert [c.text for c in nxt] == ["flowing water mill"]


def test_autocomplete_keeps_past_queries_and_refuses_bad_input(eo: Embedops) -> None:
    autocomplete.record(eo, "wn", ["river bank erosion"])
    home = eo.workspace.home
    with Embedops(home=home) as again:
        found = autocomplete.complete(again, "wn", "river b", k=5)
        assert "river bank erosion" in [c.text for c in found]
    with pytest.raises(InvalidInput, match="partial query is empty"):
        autocomplete.complete(eo, "wn", "   ")
    with pytest.raises(InvalidInput, match="k must be"):
        autocomplete.complete(eo, "wn", "ri", k=0)
    with pytest.raises(NotFound):
        autocomplete.complete(eo, "ghost", "ri")
    with pytest.raises(InvalidInput, match="list of strings"):
        autocomplete.record(eo, "wn", "one query")


def test_autocomplete_cli_and_http(eo: Embedops, client: Any,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    http, read, write = client
    body = {"queries": ["stream of water", "stream of water"]}
    assert http.post("/v1/collections/wn/queries", json=body, headers=read).status_code == 403
    rec = http.post("/v1/collections/wn/queries", json=body, headers=write)
    assert rec.status_code == 200 and rec.json() == {"recorded": 2}
    got = http.post("/v1/collections/wn/autocomplete", json={"partial": "stream o", "k": 3},
                    headers=read)
    assert got.status_code == 200
    top = got.json()["completions"][0]
    assert top["text"] == "stream of water" and top["count"] == 2 and top["source"] == "query"
    empty = http.post("/v1/collections/wn/autocomplete", json={"partial": ""}, headers=read)
    assert empty.status_code == 422
    code, out = _cli(capsys, "autocomplete", "wn", "riv", "-k", "2", "--json")
    assert code == 0 and all(c["text"].startswith("riv") for c in json.loads(out)["completions"])


# -- HDBSCAN ----------------------------------------------------------------------------------
def _plant_groups(eo: Embedops, groups: int = 4, size: int = 8) -> dict[str, int]:
    """Dense groups among the glosses: ``size`` copies of a gloss, each without one word."""
    long = [it for it in eo.peek("wn", 600) if len(it.text.split()) >= size + 2]
    planted: dict[str, int] = {}
    rows = []
    for g, item in enumerate(long[::len(long) // groups][:groups]):
        words = item.text.split()
        planted[item.id] = g
        for n in range(size):
            rows.append({"id": f"{item.id}-v{n}", "text": " ".join(words[:n] + words[n + 1:]),
                         "metadata": {"pos": item.metadata["pos"], "lemma": "planted"}})
            planted[f"{item.id}-v{n}"] = g
    eo.upsert_items("wn", rows)
    return planted


def test_hdbscan_finds_dense_groups_and_reports_noise(eo: Embedops) -> None:
    planted = _plant_groups(eo)
    report = cluster.cluster(eo, "wn", method="hdbscan", min_cluster_size=5,
                             label_field="pos", store=True)
    assert report.method == "hdbscan" and report.k == len(report.clusters) >= 4
    assert sum(c.size for c in report.clusters) + report.noise == eo.count("wn")
    noise = sorted(i for i, c in report.assignments.items() if c == -1)
    assert len(noise) == report.noise > 0 and all(c.size >= 5 for c in report.clusters)
    assert set(report.assignments.values()) == {-1, *range(report.k)}
    labels = {g: {report.assignments[i] for i, h in planted.items() if h == g} for g in range(4)}
    assert all(len(found) == 1 and -1 not in found for found in labels.values())
    assert len({next(iter(found)) for found in labels.values()}) == 4
    assert sorted(eo.ids_where("wn", {report.metadata_key: -1})) == noise
    assert report.nmi is not None and report.silhouette
    with pytest.raises(InvalidInput, match="unknown clustering method"):
        cluster.cluster(eo, "wn", method="dbscan")
    with pytest.raises(InvalidInput, match="min_cluster_size"):
        cluster.cluster(eo, "wn", method="hdbscan", min_cluster_size=1)
    with pytest.raises(InvalidInput, match="too few items"):
        cluster.cluster(eo, "wn", method="hdbscan", filters={"lemma": "entity"})


def test_hdbscan_cli_and_http(eo: Embedops, client: Any,
                              capsys: pytest.CaptureFixture[str]) -> None:
    http, read, _ = client
    got = http.post("/v1/collections/wn/cluster",
                    json={"method": "hdbscan", "min_cluster_size": 8, "assignments": True},
                    headers=read)
    assert got.status_code == 200
    body = got.json()
    assert body["method"] == "hdbscan" and body["noise"] == list(
        body["assignments"].values()).count(-1)
    code, out = _cli(capsys, "cluster", "wn", "--method", "hdbscan", "--min-cluster-size", "6")
    assert code == 0 and out.startswith("hdbscan: k=") and "noise items" in out


# -- mapping route ----------------------------------------------------------------------------
def test_map_routes_fit_show_apply_and_roles(eo: Embedops, client: Any) -> None:
    http, read, write = client
    words = [it.metadata["lemma"] for it in eo.peek("wn", 400) if " " not in
             it.metadata["lemma"]]
    body = {"source": "w2v", "target": "w2v-rot", "name": "rot",
            "pairs": [[w, w] for w in dict.fromkeys(words)]}
    assert http.post("/v1/maps", json=body, headers=read).status_code == 403
    made = http.post("/v1/maps", json=body, headers=write)
    assert made.status_code == 200 and made.json()["ref"] == "rot@1"
    assert made.json()["metrics"]["p@1"] > 0.9
    shown = http.get("/v1/maps/rot", headers=read).json()
    assert shown["source"] == "w2v@1" and shown["target"] == "w2v-rot@1"
    applied = http.post("/v1/maps/rot@1/apply", json={"texts": ["river", "stone"]},
                        headers=read)
    assert applied.status_code == 200
    vecs = np.array(applied.json()["vectors"])
    assert vecs.shape == (2, 32) and np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-4)
    # The map takes w2v to its rotation: mapped "river" is rotated "river".
    target = eo.embed(["river"], "w2v-rot@1")[0]
    assert float(vecs[0] @ target / np.linalg.norm(target)) > 0.99
    assert http.get("/v1/maps/ghost", headers=read).status_code == 404
    few = http.post("/v1/maps", json={**body, "pairs": body["pairs"][:2]}, headers=write)
    assert few.status_code == 422 and "seed pairs" in few.text
