"""Rollouts through the Python API on real parts: two word2vec models trained on gensim's Lee
corpus, a real SQLite catalog, real FAISS snapshots, the real audit log."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedops.api import Embedops
from embedops.config import Workspace
from embedops.engine import audit
from embedops.errors import (
    CollectionNotFound,
    DimensionMismatch,
    InvalidInput,
    ModelNotFound,
    VersionMismatch,
)
from embedops.lifecycle import GateConfig, GateFailed, RolloutConflict, RolloutNotFound, Rollouts
from embedops.lifecycle.stats import RolloutStats
from embedops.models.registry import Registry
from embedops.models.static import StaticVectors, publish_static
from embedops.text.tokenize import TokenizerSpec


@pytest.fixture(scope="module")
def lee_lines(lee_corpus: Path) -> list[str]:
    return [x.strip() for x in lee_corpus.read_text(errors="replace").splitlines() if x.strip()]


@pytest.fixture(scope="module")
def tables(lee_lines: list[str]) -> dict[int, StaticVectors]:
    from gensim.models import Word2Vec

    spec = TokenizerSpec()
    sentences = [spec.tokenize(line) for line in lee_lines]
    return {dim: StaticVectors.from_gensim(Word2Vec(sentences, vector_size=dim, min_count=2,
                                                    epochs=3, workers=1, seed=dim).wv)
            for dim in (24, 16)}


@pytest.fixture
def eo(workspace: Workspace, tables, lee_lines):
    registry = Registry(workspace)
    publish_static(registry, "w2v", tables[24], kind="word2vec", spec=TokenizerSpec())
    publish_static(registry, "w2v", tables[16], kind="word2vec", spec=TokenizerSpec())
    api = Embedops(workspace)
    api.collections.create("lee", model="w2v@1")
    api.upsert_items("lee", [{"id": f"d{i}", "text": t} for i, t in enumerate(lee_lines[:120])])
    api.build_index("lee", "flat", quiet=True)
    yield api
    api.close()


def _feed(stats: RolloutStats, version: str, n: int = 30, ms: float = 5.0) -> None:
    for _ in range(n):
        stats.record(version, ms / 1000)


def test_full_rollout_dual_writes_promotes_and_rolls_back(eo: Embedops, lee_lines) -> None:
    stats = RolloutStats()
    rollouts = Rollouts(eo, who="tester", stats=stats)
    state = rollouts.start("lee", "w2v@2", share=0.5, gates=GateConfig(min_requests=20))
    assert state.phase == "backfilling" and eo.collections.info("lee").candidate_version \
        == "w2v@2"
    # Written while backfilling: embedded for both versions at once (dual write).
    eo.upsert_items("lee", [{"id": "new1", "text": lee_lines[200]}])
    assert "new1" not in eo.missing_vectors("lee", "w2v@2")
    state = rollouts.run_backfill("lee", quiet=True)
    assert state.phase == "canary" and state.backfill == {"done": 121, "total": 121}
    assert eo.search("lee", lee_lines[7], k=1, model_version="w2v@2").hits[0].id == "d7"

    with pytest.raises(GateFailed, match="traffic pending"):
        rollouts.promote("lee")
    _feed(stats, "w2v@2")
    promoted = rollouts.promote("lee")
    info = eo.collections.info("lee")
    assert promoted.phase == "promoted" and (info.model_version, info.candidate_version) == \
        ("w2v@2", "w2v@1")
    assert eo.search("lee", lee_lines[7], k=1).model_version == "w2v@2"
    eo.upsert_items("lee", [{"id": "new2", "text": lee_lines[201]}])  # still written for both
    back = rollouts.rollback("lee", "bad reviews")
    info = eo.collections.info("lee")
    assert back.phase == "rolled_back" and (info.model_version, info.candidate_version) == \
        ("w2v@1", None)
    assert eo.search("lee", lee_lines[201], k=1).hits[0].id == "new2"
    assert eo.missing_vectors("lee", "w2v@2") == []
    trail = [e["action"] for e in audit.read(eo.workspace) if e["collection"] == "lee"]
    assert trail == ["rollout.start", "rollout.serving", "rollout.promote", "rollout.rollback"]
    assert [h["to"] for h in back.history] == ["canary", "promoted", "rolled_back"]


def test_broken_canary_is_rolled_back_by_status(eo: Embedops) -> None:
    stats = RolloutStats()
    rollouts = Rollouts(eo, stats=stats)
    rollouts.start("lee", "w2v@2", gates=GateConfig(max_p99_ms=50))
    rollouts.run_backfill("lee", quiet=True)
    _feed(stats, "w2v@2", n=30, ms=400)
    report = rollouts.status("lee")
    assert report["phase"] == "rolled_back" and "p99_ms broken" in report["reason"]
    assert eo.collections.info("lee").candidate_version is None
    assert audit.read(eo.workspace)[-1]["who"] == "gate-evaluator"


def test_golden_recall_gate_uses_golden_runs_on_both_versions(eo: Embedops, lee_lines) -> None:
    from embedops.monitor.db import MonitorDB
    from embedops.monitor.golden import make_query

    db = MonitorDB(eo.workspace)
    db.create_set("g", "lee")
    db.add_queries("g", [make_query(lee_lines[i], [f"d{i}"]) for i in range(0, 40, 4)])
    db.close()
    stats = RolloutStats()
    rollouts = Rollouts(eo, stats=stats)
    rollouts.start("lee", "w2v@2", gates=GateConfig(golden_set="g", min_requests=1,
                                                   recall_tolerance=1.0))
    state = rollouts.run_backfill("lee", quiet=True)
    assert set(state.golden) == {"w2v@1", "w2v@2"}
    assert all(0.0 <= v <= 1.0 for v in state.golden.values())
    _feed(stats, "w2v@2")
    gate = next(c for c in rollouts.gates(state).checks if c.name == "golden_recall")
    assert gate.status == "pass"


def test_shadow_rollout_is_aborted_and_finish_needs_promotion(eo: Embedops) -> None:
    rollouts = Rollouts(eo)
    rollouts.start("lee", "w2v@2", mode="shadow")
    with pytest.raises(RolloutConflict, match="already has a backfilling rollout"):
        rollouts.start("lee", "w2v@2")
    with pytest.raises(RolloutConflict, match="is backfilling"):
        rollouts.promote("lee")
    with pytest.raises(RolloutConflict, match="cannot become finished"):
        rollouts.finish("lee")
    state = rollouts.abort("lee")
    assert state.phase == "aborted" and eo.collections.info("lee").candidate_version is None
    with pytest.raises((VersionMismatch, DimensionMismatch)):  # never compared across versions
        eo.search("lee", "anything at all", model_version="w2v@2")


def test_bad_starts_are_refused(eo: Embedops) -> None:
    rollouts = Rollouts(eo)
    with pytest.raises(InvalidInput, match="already serves"):
        rollouts.start("lee", "w2v@1")
    with pytest.raises(ModelNotFound):
        rollouts.start("lee", "nosuch")
    with pytest.raises(CollectionNotFound):
        rollouts.start("nosuch", "w2v@2")
    with pytest.raises(InvalidInput, match="share"):
        rollouts.start("lee", "w2v@2", share=0)
    with pytest.raises(RolloutNotFound):
        rollouts.status("lee")
    assert eo.collections.info("lee").candidate_version is None


def test_interrupted_backfill_resumes(eo: Embedops) -> None:
    import threading

    rollouts = Rollouts(eo)
    rollouts.start("lee", "w2v@2")
    stop = threading.Event()
    stop.set()
    state = rollouts.run_backfill("lee", stop=stop, quiet=True)
    assert state.phase == "backfilling" and state.backfill["done"] < 120
    assert rollouts.run_backfill("lee", quiet=True).phase == "canary"


def _router_search(router, eo: Embedops, query: str, caller: str = "k"):
    return router.search("lee", caller, None, None,
                         lambda version: eo.search("lee", query, k=5, model_version=version))


def test_router_shadow_and_canary_record_figures_and_overlap(eo: Embedops, lee_lines) -> None:
    from embedops.lifecycle.rollout import RolloutStore
    from embedops.lifecycle.routing import Router

    router = Router(RolloutStore(eo.workspace))
    rollouts = Rollouts(eo, stats=router.stats("lee"), swap=router.swap)
    rollouts.start("lee", "w2v@2", mode="shadow")
    rollouts.run_backfill("lee", quiet=True)
    router.invalidate()
    for i in range(6):
        assert _router_search(router, eo, lee_lines[i]).model_version == "w2v@1"
    router._pool.submit(lambda: None).result()  # the shadow queue has drained
    figures = router.stats("lee").to_dict()
    assert figures["w2v@1"]["requests"] == 6 and figures["w2v@2"]["requests"] >= 1
    assert 0.0 <= figures["w2v@2"]["overlap"] <= 1.0
    rollouts.abort("lee")
    rollouts.start("lee", "w2v@2", share=1.0)
    rollouts.run_backfill("lee", quiet=True)
    router.invalidate()
    assert _router_search(router, eo, lee_lines[3]).model_version == "w2v@2"
    with pytest.raises(ModelNotFound):  # the caller's mistake is not counted as a version error
        router.search("lee", "k", None, "w2v@9", lambda v: eo.search("lee", "x", model_version=v))
    assert router.stats("lee").summary("w2v@9").requests == 0
    rollouts.promote("lee", force=True)  # switched under the router's write lock
    assert _router_search(router, eo, lee_lines[3]).model_version == "w2v@2"
    assert router.search("lee", "k", "candidate", None, lambda v: eo.search(
        "lee", lee_lines[3], model_version=v)).model_version == "w2v@1"
    router.close()


def test_aligned_search_only_through_an_explicit_map(eo: Embedops, lee_lines, tmp_path) -> None:
    from embedops.lifecycle.pinning import aligned_search
    from embedops.monitor.compare import fit_procrustes

    probe = lee_lines[:100]
    amap = fit_procrustes(eo.embed(probe, "w2v@2"), eo.embed(probe, "w2v@1"), "w2v@2", "w2v@1")
    amap.save(tmp_path / "map.safetensors")
    response = aligned_search(eo, "lee", lee_lines[5], "w2v@2", tmp_path / "map.safetensors",
                              k=5)
    assert response.model_version == "w2v@1" and len(response.hits) == 5
    with pytest.raises(VersionMismatch, match="this alignment maps"):
        aligned_search(eo, "lee", lee_lines[5], "w2v@1", amap)
    backwards = fit_procrustes(eo.embed(probe, "w2v@1"), eo.embed(probe, "w2v@2"), "w2v@1",
                               "w2v@2")
    with pytest.raises(VersionMismatch, match="the map targets w2v@2"):
        aligned_search(eo, "lee", lee_lines[5], "w2v@1", backwards)


def test_server_resumes_a_backfill_whose_process_stopped(eo: Embedops) -> None:
    import dataclasses
    import time

    from embedops.lifecycle.service import STALE_BACKFILL_S, RolloutService

    rollouts = Rollouts(eo)
    rollouts.start("lee", "w2v@2")
    with rollouts.store.editing("lee") as box:  # as if its CLI was killed long ago
        box[0] = dataclasses.replace(box[0], updated_at=time.time() - STALE_BACKFILL_S - 1)
    service = RolloutService(eo, interval_s=3600)
    try:
        service.evaluate_once()
        assert service.backfilling("lee") or rollouts.store.require("lee").phase == "canary"
        service._backfills["lee"].join(timeout=60)
        assert rollouts.store.require("lee").phase == "canary"
        assert eo.missing_vectors("lee", "w2v@2") == []
    finally:
        service.close()


def test_the_server_loads_the_candidate_before_it_answers(eo: Embedops, workspace) -> None:
    """Once the backfill is done, the gate thread loads the candidate's model and index, so
    neither the canary's searches nor those after a promotion pay for loading them."""
    from embedops.lifecycle.service import RolloutService

    rollouts = Rollouts(eo)  # the CLI's side: backfill and build
    rollouts.start("lee", "w2v@2")
    rollouts.run_backfill("lee", quiet=True)
    server = Embedops(workspace)  # a server process: nothing of w2v@2 loaded
    service = RolloutService(server, interval_s=3600)
    try:
        assert not server.index_loaded("lee", "w2v@2")
        service.evaluate_once()
        assert server.index_loaded("lee", "w2v@2")
    finally:
        service.close()
        server.close()
