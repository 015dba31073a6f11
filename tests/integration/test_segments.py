"""Segmented snapshots (issue 19, item 1) on a real catalog, real FAISS and real snapshot
folders: a refresh seals the items written since the snapshot into a new segment, hard-linking
the unchanged ones; search over the segments equals a full rebuild (flat) or keeps its recall
(hnsw); deletes and rewrites are masked; a merge equals a rebuild; a damaged segment is never
served; the engine, the CLI and the HTTP API all reach it.

Items bring their own vectors (clustered, random, dimension 32), so exact searches have no ties.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from serve_helpers import lee_documents, publish_lee_model, running_server, wait_until

from embedops.cli.main import main
from embedops.config import Workspace
from embedops.engine import Embedops
from embedops.serve.app import create_app
from embedops.serve.settings import ServeSettings

DIM = 32
K = 10
TEXTS = [d["text"] for d in lee_documents(300)]
_CENTERS = np.random.default_rng(0).standard_normal((24, DIM)).astype(np.float32)


def _vectors(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = _CENTERS[rng.integers(len(_CENTERS), size=n)]
    return (rows + 0.35 * rng.standard_normal((n, DIM))).astype(np.float32)


QUERIES = _vectors(25, 99)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = Workspace(tmp_path_factory.mktemp("segments") / "ws").ensure()
    publish_lee_model(ws)
    return ws.home


@pytest.fixture
def api(home: Path) -> Iterator[Embedops]:
    with Embedops(Workspace(home)) as eo:
        yield eo


def _write(api: Embedops, name: str, ids: list[str], seed: int) -> np.ndarray:
    vectors = _vectors(len(ids), seed)
    items = [{"id": i, "text": f"{TEXTS[n % len(TEXTS)]} {i}",
              "metadata": {"n": n, "half": "a" if n % 2 else "b"}} for n, i in enumerate(ids)]
    api.upsert_items(name, items, vectors=vectors)
    return vectors


def _fill(api: Embedops, name: str, kind: str, n: int = 800) -> str:
    """A collection of ``n`` items with a ``kind`` index; returns its snapshot name."""
    api.collections.create(name, model="lee")
    _write(api, name, [f"i{i}" for i in range(n)], seed=1)
    return str(api.build_index(name, kind, quiet=True)["name"])


def _dense(api: Embedops, name: str, k: int = K) -> list[list[tuple[str, float]]]:
    return [[(h.id, h.score) for h in api.search(name, vector=q, k=k).hits] for q in QUERIES]


def _same(got: list[list[tuple[str, float]]], want: list[list[tuple[str, float]]]) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert {i for i, _ in a} == {i for i, _ in b}
        assert np.allclose([s for _, s in a], [s for _, s in b], atol=1e-5)


def _churn(api: Embedops, name: str, round_: int) -> None:
    """New items, rewrites of old ones and deletes."""
    new = [f"r{round_}-{i}" for i in range(120)]
    rewritten = [f"i{i}" for i in range(round_ * 40, round_ * 40 + 30)]
    _write(api, name, new + rewritten, seed=10 + round_)
    api.delete_items(name, [f"i{i}" for i in range(500 + round_ * 20, 500 + round_ * 20 + 15)])


def test_refresh_equals_a_rebuild_for_flat(api: Embedops, home: Path) -> None:
    base = _fill(api, "flat1", "flat")
    _churn(api, "flat1", 0)
    out = api.refresh_index("flat1")
    assert out["changed"] and out["segments"] == 2 and out["added"] == 150
    status = api.index_status("flat1")
    assert status["served"]["overlay"] == 0 and status["freshness"]["stale_items"] == 0
    assert status["consistency"]["state"] == "consistent"
    assert [s["tombstones"] for s in status["served"]["segments"]] == [45, 0]
    old = api.snapshots("flat1").root / base / "index" / "index.faiss"
    linked = Path(out["path"]) / "segments" / f"seg-{base}" / "index" / "index.faiss"
    assert os.stat(old).st_ino == os.stat(linked).st_ino  # linked, not copied
    refreshed = _dense(api, "flat1")
    with Embedops(Workspace(home)) as again:  # loaded from disk and verified
        _same(_dense(again, "flat1"), refreshed)
        assert all(c.ok for c in again.verify_index("flat1"))
    api.build_index("flat1", "flat", quiet=True)
    _same(_dense(api, "flat1"), refreshed)


def test_hnsw_segments_keep_recall(api: Embedops) -> None:
    _fill(api, "hnsw1", "hnsw", n=2500)
    for r in range(3):
        _churn(api, "hnsw1", r)
        api.refresh_index("hnsw1")
    segments = api.index_status("hnsw1")["snapshot"]["segments"]
    assert segments[0]["tombstones"] > 0
    kinds = [s["kind"] for s in api.index_status("hnsw1")["served"]["segments"]]
    assert kinds == ["hnsw", "flat"]  # the small refreshes folded into one exact segment
    got = _dense(api, "hnsw1")
    api.build_index("hnsw1", "flat", quiet=True)
    exact = _dense(api, "hnsw1")
    hits = sum(len({i for i, _ in a} & {i for i, _ in b}) for a, b in zip(got, exact, strict=True))
    assert hits / (K * len(QUERIES)) >= 0.95


def test_deletes_and_rewrites_after_a_refresh_are_masked(api: Embedops, home: Path) -> None:
    _fill(api, "mask", "flat")
    _churn(api, "mask", 0)
    api.refresh_index("mask")
    target = QUERIES[0]
    # one item of the base segment and one of the new segment deleted, one rewritten to the query
    api.delete_items("mask", ["i300", "r0-5"])
    api.upsert_items("mask", [{"id": "i301", "text": "moved"}], vectors=target[None, :])
    for when in ("overlay", "refreshed"):
        hits = [h.id for h in api.search("mask", vector=target, k=50).hits]
        assert hits[0] == "i301" and len(hits) == len(set(hits)), when
        assert "i300" not in hits and "r0-5" not in hits
        api.refresh_index("mask")
    with Embedops(Workspace(home)) as again:
        hits = [h.id for h in again.search("mask", vector=target, k=50).hits]
        assert hits[0] == "i301" and "i300" not in hits and "r0-5" not in hits
        live = api.collections.info("mask").item_count
        assert again.index_status("mask")["served"]["count"] == live


def test_merge_equals_a_rebuild_and_the_policy_bounds_segments(api: Embedops) -> None:
    _fill(api, "merge1", "flat")
    merged = []
    for r in range(4):  # segments of 150 beside the base; the fourth fills their size tier
        _churn(api, "merge1", r)
        merged.append(api.refresh_index("merge1")["merged"])
    assert merged == [0, 0, 0, 3]
    assert len(api.index_status("merge1")["served"]["segments"]) == 2  # the base, the merged
    _churn(api, "merge1", 4)  # 3 segments: the worn base (28% tombstones) and the small ones
    out = api.refresh_index("merge1", max_segments=2)  # over the count: the small ones merge
    assert out["segments"] <= 2 and out["merged"] > 0
    before = _dense(api, "merge1")
    merged = api.merge_index("merge1")
    assert merged["segments"] == 1
    segs = api.index_status("merge1")["served"]["segments"]
    assert len(segs) == 1 and segs[0]["tombstones"] == 0
    assert segs[0]["live"] == api.collections.info("merge1").item_count
    _same(_dense(api, "merge1"), before)
    api.build_index("merge1", "flat", quiet=True)
    _same(_dense(api, "merge1"), before)
    assert api.merge_index("merge1")["segments"] == 1


def test_a_merge_extends_the_largest_graph_when_it_has_no_tombstones(api: Embedops,
                                                                     home: Path) -> None:
    _fill(api, "grow", "hnsw", n=2500)
    _write(api, "grow", [f"n{i}" for i in range(300)], seed=7)  # new items only
    assert api.refresh_index("grow")["segments"] == 2
    out = api.merge_index("grow")
    assert out["segments"] == 1 and out["reused"] == 2500  # the base graph copied, 300 added
    live = api.collections.info("grow").item_count
    status = api.index_status("grow")
    assert status["served"]["count"] == live == 2800
    assert status["consistency"]["state"] == "consistent"
    got = _dense(api, "grow")
    ids = [f"i{i}" for i in range(2500)] + [f"n{i}" for i in range(300)]
    rows = np.concatenate([_vectors(2500, 1), _vectors(300, 7)])
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    exact_top = [{ids[j] for j in np.argsort(-(rows @ (q / np.linalg.norm(q))))[:K]}
                 for q in QUERIES]
    hits = sum(len({i for i, _ in a} & t) for a, t in zip(got, exact_top, strict=True))
    assert hits / (K * len(QUERIES)) >= 0.95
    with Embedops(Workspace(home)) as again:  # the extended segment saved, loaded, verified
        _same(_dense(again, "grow"), got)
        assert all(c.ok for c in again.verify_index("grow"))
    _churn(api, "grow", 0)  # a delete: the graph has tombstones now, the merge rebuilds it
    api.refresh_index("grow")
    rebuilt = api.merge_index("grow")
    assert rebuilt["reused"] == 0 and rebuilt["segments"] == 1
    assert api.index_status("grow")["served"]["segments"][0]["tombstones"] == 0
    got = _dense(api, "grow")
    api.build_index("grow", "flat", quiet=True)
    exact = _dense(api, "grow")
    hits = sum(len({i for i, _ in a} & {i for i, _ in b}) for a, b in zip(got, exact, strict=True))
    assert hits / (K * len(QUERIES)) >= 0.95


@pytest.mark.parametrize("kind", ["ivf", "rabitq"])
def test_a_refresh_folds_writes_into_a_cell_segment(api: Embedops, home: Path,
                                                     kind: str) -> None:
    name = f"fold-{kind}"
    api.collections.create(name, model="lee")
    _write(api, name, [f"i{i}" for i in range(5000)], seed=1)
    params = {"nlist": 16, "nprobe": 16, **({"rescore_factor": 30} if kind == "rabitq" else {})}
    base = str(api.build_index(name, kind, params, quiet=True)["name"])
    _write(api, name, [f"n{i}" for i in range(300)], seed=7)
    out = api.refresh_index(name)
    # one segment: the built one copied, the writes encoded into its cells
    assert out["folded"] and out["segments"] == 1 and out["reused"] == 5000
    seg = Path(out["path"]) / "segments" / api.index_status(name)["served"]["segments"][0]["name"]
    old = api.snapshots(name).root / base / "index" / "vectors.npy"
    if kind == "rabitq":  # the full vectors: the old part linked, the new rows a part of their own
        assert os.stat(old).st_ino == os.stat(seg / "index" / "vectors.npy").st_ino
        assert np.load(seg / "index" / "vectors.1.npy").shape == (300, DIM)
    _churn(api, name, 0)  # rewrites and deletes: tombstones carried by the next fold
    out = api.refresh_index(name)
    assert out["folded"] and out["segments"] == 1
    status = api.index_status(name)
    assert status["served"]["segments"][0]["tombstones"] == 45
    assert status["served"]["count"] == api.collections.info(name).item_count
    assert status["consistency"]["state"] == "consistent"
    gone = {f"i{i}" for i in range(500, 515)}
    got = _dense(api, name)
    assert not gone & {i for hits in got for i, _ in hits}
    with Embedops(Workspace(home)) as again:  # the parts saved, loaded and verified
        _same(_dense(again, name), got)
        assert all(c.ok for c in again.verify_index(name))
    # past twice the size its cells were trained on, the writes are sealed apart
    _write(api, name, [f"m{i}" for i in range(5000)], seed=8)
    out = api.refresh_index(name)
    assert not out["folded"] and out["segments"] == 2
    got = _dense(api, name)
    api.build_index(name, "flat", quiet=True)
    exact = _dense(api, name)
    if kind == "ivf":  # every cell probed: exact
        for a, b in zip(got, exact, strict=True):
            assert [i for i, _ in a] == [i for i, _ in b]
    hits = sum(len({i for i, _ in a} & {i for i, _ in b}) for a, b in zip(got, exact, strict=True))
    assert hits / (K * len(QUERIES)) >= 0.95
    api.collections.delete(name)  # the later tests' servers need not warm it up


def test_filters_and_modes_over_segments(api: Embedops) -> None:
    _fill(api, "modes", "hnsw", n=600)
    _churn(api, "modes", 0)
    api.refresh_index("modes")

    def run() -> list[object]:
        served = api.served_index("modes")
        accept = {f"i{i}" for i in range(0, 600, 3)}.__contains__  # the over-fetching path
        out: list[object] = [[i for i, _ in served.search(q, K, accept=accept,
                                                         search_params={"ef_search": 256})]
                             for q in QUERIES[:8]]
        for mode in ("lexical", "hybrid"):
            out.append([h.id for h in api.search("modes", TEXTS[3][:80], k=K, mode=mode,
                                                 filters={"half": "a"}).hits])
        return out

    refreshed = run()
    assert all(len(r) == K for r in refreshed)  # type: ignore[arg-type]
    api.build_index("modes", "hnsw", quiet=True)
    rebuilt = run()
    assert refreshed[-2] == rebuilt[-2]  # lexical: no index involved
    overlap = [len(set(a) & set(b)) / K for a, b in zip(refreshed[:8], rebuilt[:8], strict=True)]
    assert np.mean(overlap) >= 0.95


def test_a_merge_is_built_at_the_merge_rate(api: Embedops,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from embedops.index import merge_policy

    _fill(api, "paced", "hnsw", n=2400)
    for r in range(2):
        _churn(api, "paced", r)
        api.refresh_index("paced")
    now, sleeps = [0.0], []  # a clock that moves only when the merge sleeps

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(merge_policy, "_clock", lambda: now[0])
    monkeypatch.setattr(merge_policy, "_sleep", sleep)
    monkeypatch.setenv("EMBEDOPS_MERGE_RATE", "500")
    monkeypatch.setenv("EMBEDOPS_MERGE_CHUNK", "256")
    out = api.merge_index("paced")
    live = api.collections.info("paced").item_count
    assert out["segments"] == 1 and out["count"] == live
    starts = range(256, live, 256)  # the chunks after the first: one pause before each
    assert len(sleeps) == len(starts) and all(s > 0 for s in sleeps)
    assert now[0] == pytest.approx(starts[-1] / 500)  # never ahead of 500 vectors a second
    assert out["throttled_s"] == pytest.approx(now[0], abs=1e-3)
    status = api.index_status("paced")
    assert status["served"]["segments"][0]["kind"] == "hnsw"
    assert status["consistency"]["state"] == "consistent"
    got = _dense(api, "paced")
    api.build_index("paced", "flat", quiet=True)
    exact = _dense(api, "paced")
    hits = sum(len({i for i, _ in a} & {i for i, _ in b}) for a, b in zip(got, exact, strict=True))
    assert hits / (K * len(QUERIES)) >= 0.95


def test_the_checksum_of_a_refresh_equals_one_over_its_items(api: Embedops, home: Path) -> None:
    from embedops.engine import consistency

    _fill(api, "sums", "flat")
    for r in range(3):  # new items, rewrites and deletes: the sum is updated, not recomputed
        _churn(api, "sums", r)
        api.refresh_index("sums")
    served = api.served_index("sums")
    recorded = served.meta[consistency.META_KEY]
    assert recorded == consistency.record(served.live_keys(), served.model_version)
    with Embedops(Workspace(home)) as again:  # loaded and compared with the catalog
        check = again.index_status("sums")["consistency"]
        assert check["state"] == "consistent"
        assert check["checksum"] == check["catalog_checksum"] == recorded["checksum"]


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_damaged_segment_is_never_served(api: Embedops, home: Path) -> None:
    first = _fill(api, "dmg", "flat")
    _churn(api, "dmg", 0)
    out = api.refresh_index("dmg")
    expected = _dense(api, "dmg")
    fresh = [p for p in (Path(out["path"]) / "segments").iterdir() if p.name != f"seg-{first}"]
    _flip(fresh[0] / "index" / "index.faiss")
    with Embedops(Workspace(home)) as again:
        bad = [c for c in again.verify_index("dmg") if not c.ok]
        assert [c.name for c in bad] == [out["name"]]
        assert any(f"segments/{fresh[0].name}/index/index.faiss" in p for p in bad[0].problems)
        _same(_dense(again, "dmg"), expected)  # the previous snapshot plus its overlay
        status = again.index_status("dmg")
        assert status["snapshot"]["name"] == first
        assert out["name"] in status["load"]["quarantined"]


def test_a_damaged_shared_segment_fails_every_snapshot_linking_it(api: Embedops,
                                                                   home: Path) -> None:
    first = _fill(api, "dmg2", "flat")
    _churn(api, "dmg2", 0)
    out = api.refresh_index("dmg2")
    expected = _dense(api, "dmg2")
    _flip(api.snapshots("dmg2").root / first / "keys.json")
    with Embedops(Workspace(home)) as again:
        bad = {c.name for c in again.verify_index("dmg2") if not c.ok}
        assert bad == {first, out["name"]}
        _same(_dense(again, "dmg2"), expected)  # rebuilt from the catalog, never served
        assert again.index_status("dmg2")["load"]["rebuilt"] == "no good snapshot"


def test_a_fold_records_the_checksum_a_linked_part_was_verified_with(api: Embedops,
                                                                     home: Path) -> None:
    name = "dmg-fold"
    api.collections.create(name, model="lee")
    _write(api, name, [f"i{i}" for i in range(4500)], seed=1)  # past the exact-segment size
    first = str(api.build_index(name, "rabitq", {"nlist": 8}, quiet=True)["name"])
    _flip(api.snapshots(name).root / first / "index" / "vectors.npy")  # damaged in place
    _write(api, name, [f"n{i}" for i in range(100)], seed=7)
    out = api.refresh_index(name)
    assert out["folded"]  # the fold links the damaged file: not read, not re-checksummed
    with Embedops(Workspace(home)) as again:
        bad = {c.name for c in again.verify_index(name) if not c.ok}
        assert bad == {first, out["name"]}  # both fail, as for any shared file
        assert again.index_status(name, load=True)["load"]["rebuilt"] == "no good snapshot"
    api.collections.delete(name)


def test_rollback_serves_the_previous_manifest(api: Embedops) -> None:
    first = _fill(api, "back", "flat")
    _churn(api, "back", 0)
    api.refresh_index("back")
    expected = _dense(api, "back")
    assert api.rollback_index("back")["name"] == first
    _same(_dense(api, "back"), expected)  # the writes since come from the catalog again
    assert api.index_status("back")["served"]["overlay"] > 0


def test_a_large_overlay_is_refreshed_in_the_background(api: Embedops,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from embedops.engine import indexes

    monkeypatch.setattr(indexes, "AUTO_REFRESH_ITEMS", 100)
    _fill(api, "auto", "flat", n=200)
    _write(api, "auto", [f"a{i}" for i in range(150)], seed=7)
    before = _dense(api, "auto")  # the first search finds 150 items in the overlay

    def sealed() -> bool:
        status = api.index_status("auto")
        segments = status["snapshot"].get("segments") or []
        return len(segments) == 2 and status["served"]["overlay"] == 0

    wait_until(sealed, what="the background refresh")
    _same(_dense(api, "auto"), before)


def test_refuses_what_it_cannot_segment(api: Embedops) -> None:
    from embedops.errors import InvalidInput

    _fill(api, "few", "flat", n=20)
    with pytest.raises(InvalidInput, match="max_segments"):
        api.refresh_index("few", max_segments=0)
    assert api.refresh_index("few")["changed"] is False


def test_cli_refresh_and_merge(home: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("EMBEDOPS_HOME", str(home))
    with Embedops(Workspace(home)) as api:
        _fill(api, "cli", "flat", n=100)
        _churn(api, "cli", 0)
    assert main(["--quiet", "index", "refresh", "cli", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["segments"] == 2 and out["added"] == 150
    assert main(["--quiet", "index", "status", "cli"]) == 0
    assert "segments: 2" in capsys.readouterr().out
    assert main(["--quiet", "index", "merge", "cli"]) == 0
    assert "merged cli" in capsys.readouterr().out
    assert main(["--quiet", "index", "refresh", "cli"]) == 0
    assert "nothing to refresh" in capsys.readouterr().out
    assert main(["--quiet", "index", "refresh", "nope"]) == 1
    assert "nope" in capsys.readouterr().err


def test_http_refresh_and_merge(home: Path) -> None:
    settings = ServeSettings(home=str(home), auth=False)
    docs = lee_documents(60)
    with running_server(create_app(settings)) as base, \
            httpx.Client(base_url=base, timeout=60) as http:
        assert http.post("/v1/collections", json={"name": "web", "model": "lee"}).status_code \
            == 201
        assert http.post("/v1/collections/web/items", json={"items": docs[:50]}).status_code \
            == 200
        assert http.post("/v1/collections/web/index", json={"kind": "flat"}).status_code == 200
        assert http.post("/v1/collections/web/items", json={"items": docs[50:]}).status_code \
            == 200
        done = http.post("/v1/collections/web/index/refresh")
        assert done.status_code == 200, done.text
        assert done.json()["segments"] == 2 and done.json()["added"] == 10
        assert done.headers["x-model-version"] == "lee@1"
        hit = http.post("/v1/collections/web/search", json={"query": docs[55]["text"], "k": 1})
        assert hit.json()["hits"][0]["id"] == docs[55]["id"]
        bad = http.post("/v1/collections/web/index/refresh", json={"max_segments": 0})
        assert bad.status_code == 422
        assert http.post("/v1/collections/nope/index/refresh").status_code == 404
        merged = http.post("/v1/collections/web/index/merge", json={})
        assert merged.status_code == 200 and merged.json()["segments"] == 1
        again = http.post("/v1/collections/web/index/refresh", json={"max_segments": 4})
        assert again.status_code == 200 and again.json()["changed"] is False
