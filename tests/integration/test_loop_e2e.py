"""The loop closed end to end, on real text and a real model (issue #18's "Done when").

A collection of WordNet glosses on MiniLM (model A). Simulated users search a synset's lemma
over HTTP and click a hit only when it is the lemma's own gloss (the hidden relevance
judgement); the clicks go through the real feedback route. ``embedops feedback mine`` turns
them into pairs with hard negatives, the engine fine-tunes model B from them, and
``migrate --to B`` runs in a real server while another process sends searches to it. Checked:
no non-2xx answer during the migration, B's golden recall on kept-back lemmas recorded in the
migration's result, every item embedded once by B. The kept-back figures of A and B are
printed either way (``pytest -s``): whether B beat A is reported, not assumed.
"""

from __future__ import annotations

import json
import lzma
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from serve_helpers import running_server, wait_until

from embedops.cli.main import main
from embedops.config import HOME_ENV, Workspace
from embedops.engine import Embedops
from embedops.evaluate.postprocess import GLOSSES
from embedops.lifecycle.routing import bucket
from embedops.monitor.db import GoldenQuery, MonitorDB
from embedops.monitor.feedback import Feedback
from embedops.serve.app import create_app
from embedops.serve.keys import KeyStore
from embedops.serve.settings import ServeSettings
from embedops.train.finetune import FinetuneConfig

pytestmark = [pytest.mark.transformer, pytest.mark.slow]

A, B = "minilm@1", "minilm-fb@1"
N_USERS_QUERIES, N_KEPT_BACK = 160, 60
SHARE = 0.5

# The other process: searches with read keys (round robin, both sides of the canary split)
# until the stop file appears, for at most MAX_S seconds or MAX_REQUESTS requests.
SEARCHER = r"""
import json, os, sys, time, httpx
base, config_path, stop_path, out_path = sys.argv[1:5]
cfg = json.load(open(config_path))
MAX_S, MAX_REQUESTS = 240.0, 20000
codes, versions, n, began = {}, {}, 0, time.monotonic()
with httpx.Client(base_url=base, timeout=60) as c:
    while not os.path.exists(stop_path) and time.monotonic() - began < MAX_S \
            and n < MAX_REQUESTS:
        n += 1
        r = c.post("/v1/collections/defs/search", json={"query": cfg["queries"][n % len(
            cfg["queries"])], "k": 10}, headers={"X-API-Key": cfg["keys"][n % len(cfg["keys"])]})
        codes[str(r.status_code)] = codes.get(str(r.status_code), 0) + 1
        if r.status_code == 200:
            v = r.json()["model_version"]
            versions[v] = versions.get(v, 0) + 1
json.dump({"codes": codes, "versions": versions, "requests": n}, open(out_path, "w"))
"""


def _synsets() -> list[dict[str, str]]:
    """Nouns with a distinct one-word lemma and a gloss of moderate length, shuffled."""
    with lzma.open(GLOSSES, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    random.Random(7).shuffle(rows)
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    for row in rows:
        lemma = row["lemmas"][0]
        if row["pos"] != "noun" or not lemma.isalpha() or len(lemma) < 4 or lemma in seen \
                or not 30 <= len(row["gloss"]) <= 160:
            continue
        seen.add(lemma)
        out.append({"id": row["id"], "lemma": lemma, "gloss": row["gloss"]})
        if len(out) == N_USERS_QUERIES + N_KEPT_BACK:
            return out
    raise AssertionError("too few glosses")


def _workspace(home: Path, synsets: list[dict[str, str]]) -> Workspace:
    """'defs' (the glosses) on MiniLM, a golden set of the kept-back lemmas, query texts
    allowed with feedback."""
    from embedops.models.registry import Registry
    from embedops.models.transformer import import_transformer

    ws = Workspace(home).ensure()
    import_transformer(Registry(ws), "minilm", "minilm", onnx=False)
    with Embedops(ws) as api:
        api.collections.create("defs", model=A)
        api.upsert_items("defs", [{"id": s["id"], "text": s["gloss"]} for s in synsets])
        api.build_index("defs", kind="flat", quiet=True)
        db = MonitorDB(ws, api)
        try:
            db.create_set("gold", "defs")
            db.add_queries("gold", [GoldenQuery(s["lemma"], {s["id"]: 1.0})
                                    for s in synsets[N_USERS_QUERIES:]])
            Feedback(api, db).allow_queries("defs", True)
        finally:
            db.close()
    return ws


def _keys(ws: Workspace) -> tuple[str, str, list[str]]:
    """An admin key, a write key (the users), read keys on both sides of the canary split."""
    store = KeyStore(ws)
    admin, _ = store.create("admin")
    user, _ = store.create("write")
    readers: list[tuple[str, str]] = []
    while len(readers) < 4 or len({bucket("defs", B, i) < SHARE for _, i in readers}) < 2:
        secret, info = store.create("read")
        readers.append((secret, info.id))
    return admin, user, [s for s, _ in readers]


def _simulate_users(user: httpx.Client, synsets: list[dict[str, str]]) -> int:
    """Two users per lemma search it and click its own gloss when it is shown (the hidden
    judgement); the events go through the feedback route. Returns the clicks recorded."""
    events: list[dict[str, Any]] = []
    for s in synsets[:N_USERS_QUERIES]:
        for person in range(2):
            answer = user.post("/v1/collections/defs/search",
                               json={"query": s["lemma"], "k": 10})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            shown = [h["id"] for h in body["hits"]]
            if s["id"] in shown:
                events.append({"event_id": f"{body['query_id']}-{person}", "kind": "click",
                               "query_id": body["query_id"], "item_id": s["id"],
                               "shown": shown, "query": s["lemma"],
                               "model_version": body["model_version"]})
    for start in range(0, len(events), 100):
        resp = user.post("/v1/collections/defs/feedback",
                         json={"events": events[start:start + 100]})
        assert resp.status_code == 200, resp.text
    return len(events)


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    code = main(["--quiet", *args])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def test_feedback_to_finetune_to_migrate_under_load(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    synsets = _synsets()
    ws = _workspace(tmp_path / "ws", synsets)
    monkeypatch.setenv(HOME_ENV, str(ws.home))
    admin_key, user_key, readers = _keys(ws)
    app = create_app(ServeSettings(home=str(ws.home), auth=True, warmup=False))
    config, stop, out = tmp_path / "load.json", tmp_path / "stop", tmp_path / "load-out.json"
    config.write_text(json.dumps({"keys": readers,
                                  "queries": [s["lemma"] for s in synsets[N_USERS_QUERIES:]]}))
    with running_server(app) as base, \
            httpx.Client(base_url=base, timeout=120, headers={"X-API-Key": user_key}) as user, \
            httpx.Client(base_url=base, timeout=120, headers={"X-API-Key": admin_key}) as admin:
        clicks = _simulate_users(user, synsets)
        assert clicks >= 100, clicks  # MiniLM shows most lemmas' own gloss in its top 10
        figures = admin.get("/v1/collections/defs/feedback").json()["versions"]
        assert [(f["model_version"], f["events"]) for f in figures] == [(A, clicks)]

        mined_dir = tmp_path / "mined"
        mined = _cli(capsys, "feedback", "mine", "defs", "--out", str(mined_dir),
                     "--max-negatives", "1", "--json")
        assert mined["counts"]["train"] >= 50 and mined["counts"]["heldout"] >= 10, mined
        with Embedops(ws) as api:
            model_b = api.models.finetune(
                A, "minilm-fb", mined_dir / "pairs_train.jsonl",
                mined_dir / "pairs_heldout.jsonl",
                FinetuneConfig(batch_size=16, learning_rate=2e-4, seed=0), onnx=False)
        assert model_b.ref == B and model_b.parent == A

        load = subprocess.Popen([sys.executable, "-c", SEARCHER, base, str(config), str(stop),
                                 str(out)])
        try:
            time.sleep(1.0)  # the searcher is answering before the migration starts
            started = admin.post("/v1/collections/defs/migrate", json={
                "to": B, "golden_set": "gold", "recall_tolerance": 0.1, "min_traffic": 20,
                "canary_share": SHARE, "canary_seconds": 120, "max_p99_ms": 60_000})
            assert started.status_code == 202, started.text
            wait_until(lambda: admin.get("/v1/collections/defs/migrate").json()["migration"][
                "step"] in ("done", "rolled_back"), timeout=300, what="migration end")
            state = admin.get("/v1/collections/defs/migrate").json()["migration"]
        finally:
            stop.touch()
            load.wait(timeout=120)
        result = json.loads(out.read_text())
        after = admin.post("/v1/collections/defs/search", json={"query": "dog", "k": 3})
        metrics = admin.get("/metrics").text

    golden = state.get("golden", {}).get("recall", {})
    heldout = model_b.manifest["eval"]["heldout"]
    print(f"\nkept-back golden recall@10: A {golden.get(A)}, B {golden.get(B)}; mined held-out "
          f"pairs recall@10: A {heldout['before']['recall@10']}, "
          f"B {heldout['after']['recall@10']}; searches during migration {result}")
    assert state["step"] == "done", state
    assert set(golden) == {A, B} and 0.0 <= golden[B] <= 1.0  # B's golden recall, recorded
    assert set(result["codes"]) == {"200"}, result  # no non-2xx during the migration
    assert result["requests"] >= 20 and {A, B} <= set(result["versions"]), result
    assert after.status_code == 200 and after.json()["model_version"] == B
    with Embedops(ws) as api:
        info = api.collections.info("defs")
        assert (info.model_version, info.candidate_version) == (B, None)
        ids, vectors = api.load_vectors("defs", B)
    assert sorted(ids) == sorted(s["id"] for s in synsets)  # every item, once
    assert vectors.shape == (len(synsets), 384)
    assert state["plan"]["missing"] == len(synsets)
    assert (f'embedops_migration_step{{collection="defs",source="{A}",step="done",'
            f'target="{B}"}} 1.0') in metrics
    assert f'embedops_feedback_events_total{{collection="defs",kind="click",' \
        f'model_version="{A}"}} {float(clicks)}' in metrics
