"""Use cases end to end on real data (shipped WordNet glosses, a word2vec model trained on them):
Python API, CLI and HTTP, and the errors for bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from usecases_data import build, engine_on_copy

from embedops.cli.main import main
from embedops.config import Workspace
from embedops.engine.facade import Embedops
from embedops.errors import InvalidInput, NotFound, VersionMismatch
from embedops.usecases import classify, cluster, dedup, mapping, recommend


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return build(tmp_path_factory.mktemp("usecases") / "ws")


@pytest.fixture
def eo(built: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Embedops]:
    yield from engine_on_copy(built.home, tmp_path, monkeypatch)


# -- classify ---------------------------------------------------------------------------------
def test_classify_train_predict_and_manifest(eo: Embedops) -> None:
    clf = classify.train(eo, "wn", label_field="pos", name="pos", c=10.0)
    m = clf.manifest
    assert m["ref"] == "pos@1" and m["model_version"] == "w2v@1" and m["parent"] is None
    assert sorted(m["labels"]) == ["adj", "adv", "noun", "verb"]
    assert m["metrics"]["accuracy"] > 0.25  # four balanced classes: better than chance
    assert len(m["metrics"]["confusion"]) == 4 and m["test_count"] >= 4
    again = classify.train(eo, "wn", label_field="pos", name="pos")
    assert again.manifest["ref"] == "pos@2" and again.manifest["parent"] == "pos@1"
    preds = classify.predict_texts(eo, "pos@1", ["in a quick manner", "to move fast"], k=3)
    assert all(len(p.top) == 3 and p.label == p.top[0][0] for p in preds)
    assert all(abs(sum(q for _, q in p.top) - 1) < 1 for p in preds)
    none = classify.predict_texts(eo, "pos", ["in a quick manner"], threshold=1.0)
    assert none[0].label is None and none[0].to_dict()["abstained"]
    ev = classify.evaluate(eo, "pos", ["in a quick manner"], ["adv"], threshold=0.0)
    assert ev["abstain_rate"] == 0.0 and 0 <= ev["false_routing_rate"] <= 1


def test_classify_refuses_bad_input(eo: Embedops) -> None:
    with pytest.raises(InvalidInput, match="no item .* 'nope'"):
        classify.train(eo, "wn", label_field="nope")
    with pytest.raises(InvalidInput, match="not in collection"):
        classify.train(eo, "wn", labels={"missing-id": "x"})
    with pytest.raises(NotFound, match="no classifiers 'ghost'"):
        classify.predict_texts(eo, "ghost", ["x"])
    clf = classify.train(eo, "wn", label_field="pos", name="pos")
    with pytest.raises(InvalidInput, match="unknown to classifier"):
        classify.evaluate(eo, "pos", ["a thing"], ["noun.artifact"])
    with pytest.raises(VersionMismatch, match="trained on w2v@1"):
        clf.predict(np.zeros((1, 32), np.float32), "minilm@1")
    ids = eo.ids_where("wn", {"pos": "noun"})[:3]
    one = {i: "x" for i in ids}
    with pytest.raises(InvalidInput, match="at least 2 labels"):
        classify.train(eo, "wn", labels=one)


# -- recommend --------------------------------------------------------------------------------
def test_more_like_this_excludes_filters_and_diversifies(eo: Embedops) -> None:
    verbs = eo.ids_where("wn", {"pos": "verb"})[:3]
    hits = recommend.more_like_this(eo, "wn", verbs, k=10)
    assert len(hits) == 10 and not set(verbs) & {h.id for h in hits}
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    filt = recommend.more_like_this(eo, "wn", verbs, k=5, filters={"pos": "adv"})
    assert filt and all(h.metadata["pos"] == "adv" for h in filt)
    skip = [h.id for h in hits[:2]]
    assert not set(skip) & {h.id for h in recommend.more_like_this(eo, "wn", verbs, exclude=skip)}
    diverse = recommend.more_like_this(eo, "wn", verbs, k=10, diversity=0.7)
    assert len(diverse) == 10 and [h.id for h in diverse] != [h.id for h in hits]
    weighted = recommend.recommend(eo, "wn", {verbs[0]: 5.0, verbs[1]: 1.0},
                                   negative=[verbs[2]], k=3)
    assert len(weighted) == 3


def test_recommend_refuses_empty_profile(eo: Embedops) -> None:
    with pytest.raises(InvalidInput, match="profile is empty"):
        recommend.more_like_this(eo, "wn", [])
    with pytest.raises(InvalidInput, match="are in collection"):
        recommend.more_like_this(eo, "wn", ["no-such-id"])
    with pytest.raises(InvalidInput, match="diversity"):
        recommend.more_like_this(eo, "wn", eo.item_ids("wn")[:1], diversity=2.0)


# -- cluster ----------------------------------------------------------------------------------
def test_cluster_sweep_names_scores_and_stores(eo: Embedops) -> None:
    report = cluster.cluster(eo, "wn", k=[2, 4], label_field="pos", store=True)
    assert report.k in (2, 4) and set(report.silhouette) == {2, 4}
    assert sum(c.size for c in report.clusters) == eo.count("wn")
    assert all(c.terms and c.central for c in report.clusters)
    assert report.nmi is not None and 0 <= report.nmi <= 1 and report.ari is not None
    key = report.metadata_key
    assert key == "cluster_w2v_1"
    first = report.clusters[0]
    assert set(eo.ids_where("wn", {key: first.cluster})) == {
        i for i, c in report.assignments.items() if c == first.cluster}


def test_cluster_refuses_too_few_items(eo: Embedops) -> None:
    with pytest.raises(InvalidInput, match="too few items to cluster"):
        cluster.cluster(eo, "wn", k=4, filters={"lemma": "entity"})
    with pytest.raises(InvalidInput, match="k must be"):
        cluster.cluster(eo, "wn", k=1)


# -- near-duplicates and mapping --------------------------------------------------------------
def test_near_duplicates_exact_and_truncated(eo: Embedops) -> None:
    items = eo.get_items("wn", eo.item_ids("wn")[:2])
    a, b = items
    eo.upsert_items("wn", [{"id": "copy", "text": a.text.upper(), "metadata": {"pos": "x"}},
                           {"id": "trunc", "text": b.text + " and so on",
                            "metadata": {"pos": "x"}}])
    report = dedup.find_duplicates(eo, "wn", threshold=0.85, lexical=0.5)
    found = {(p.a, p.b): p for p in report.pairs}
    assert found[tuple(sorted((a.id, "copy")))].exact
    assert tuple(sorted((b.id, "trunc"))) in found
    assert [a.id, "copy"] in report.groups
    with pytest.raises(InvalidInput, match="threshold"):
        dedup.find_duplicates(eo, "wn", threshold=0.0)


def test_mapping_recovers_a_rotation_and_refuses_other_versions(eo: Embedops) -> None:
    words = [it.metadata["lemma"] for it in eo.peek("wn", 400) if " " not in
             it.metadata["lemma"]]
    pairs = [(w, w) for w in dict.fromkeys(words)]
    manifest = mapping.fit(eo, "w2v", "w2v-rot", pairs, name="rot")
    assert manifest["ref"] == "rot@1" and manifest["metrics"]["p@1"] > 0.9
    vec = eo.embed(["river"], "w2v@1")
    assert mapping.apply(eo, "rot", vec, "w2v@1").shape == (1, 32)
    with pytest.raises(VersionMismatch):
        mapping.apply(eo, "rot", vec, "w2v-rot@1")
    with pytest.raises(InvalidInput, match="seed pairs"):
        mapping.fit(eo, "w2v", "w2v-rot", pairs[:2], name="rot")


# -- CLI and HTTP -----------------------------------------------------------------------------
def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["--quiet", *args])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_cli_classify_recommend_cluster(eo: Embedops, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    eo.close()
    code, out = _cli(capsys, "classify", "train", "wn", "--label-field", "pos", "--name",
                     "pos", "--json")
    assert code == 0 and json.loads(out)["ref"] == "pos@1"
    code, out = _cli(capsys, "classify", "predict", "pos", "in a slow manner", "-k", "2",
                     "--json")
    assert code == 0 and len(json.loads(out)[0]["top"]) == 2
    code, out = _cli(capsys, "classify", "show", "pos@1")
    assert code == 0 and "pos@1" in out and "macro-F1" in out
    code, out = _cli(capsys, "classify", "predict", "ghost", "x")
    assert code != 0 and "no classifiers 'ghost'" in out
    code, out = _cli(capsys, "recommend", "wn", "--like", "00001740-n", "-k", "3",
                     "--diversity", "0.3", "--json")
    assert code == 0 and len(json.loads(out)["hits"]) == 3
    code, out = _cli(capsys, "recommend", "wn", "--like", "nope")
    assert code != 0 and "are in collection" in out
    code, out = _cli(capsys, "cluster", "wn", "-k", "3", "--label-field", "pos", "--json")
    body = json.loads(out)
    assert code == 0 and body["k"] == 3 and body["nmi"] is not None
    code, out = _cli(capsys, "duplicates", "wn", "--json")
    assert code == 0 and json.loads(out)["checked"] > 0


def test_http_routes_and_roles(eo: Embedops) -> None:
    from fastapi.testclient import TestClient

    from embedops.serve.app import create_app
    from embedops.serve.keys import KeyStore
    from embedops.serve.settings import ServeSettings

    keys = KeyStore(eo.workspace)
    read = {"X-API-Key": keys.create("read")[0]}
    write = {"X-API-Key": keys.create("write")[0]}
    app = create_app(ServeSettings(home=str(eo.workspace.home), warmup=False), api=eo)
    with TestClient(app) as client:
        train = {"collection": "wn", "label_field": "pos", "name": "pos"}
        assert client.post("/v1/classifiers", json=train, headers=read).status_code == 403
        made = client.post("/v1/classifiers", json=train, headers=write)
        assert made.status_code == 200 and made.json()["ref"] == "pos@1"
        got = client.post("/v1/classifiers/pos/predict", json={"texts": ["to run"], "k": 2},
                          headers=read)
        assert got.status_code == 200 and len(got.json()["predictions"][0]["top"]) == 2
        assert client.get("/v1/classifiers/pos@1", headers=read).json()["ref"] == "pos@1"
        assert client.get("/v1/classifiers/ghost", headers=read).status_code == 404
        rec = client.post("/v1/collections/wn/recommend",
                          json={"positive": ["00001740-n"], "k": 4}, headers=read)
        assert rec.status_code == 200 and len(rec.json()["hits"]) == 4
        empty = client.post("/v1/collections/wn/recommend", json={"positive": []},
                            headers=read)
        assert empty.status_code == 422 and "profile is empty" in empty.text
        body = {"k": [3], "store": True}
        assert client.post("/v1/collections/wn/cluster", json=body,
                           headers=read).status_code == 403
        clu = client.post("/v1/collections/wn/cluster", json=body, headers=write)
        assert clu.status_code == 200 and clu.json()["metadata_key"] == "cluster_w2v_1"
        few = client.post("/v1/collections/wn/cluster",
                          json={"k": [4], "filters": {"lemma": "entity"}}, headers=read)
        assert few.status_code == 422 and "too few items" in few.text
        dup = client.post("/v1/collections/wn/duplicates", json={"threshold": 0.99},
                          headers=read)
        assert dup.status_code == 200 and dup.json()["checked"] == eo.count("wn")
