"""Encryption at rest covers everything derived from the texts (issue 21, item 4).

For an encrypted collection: ingest and upsert known texts, build indexes, search, run a golden
set bound to it and a drift check, then read every file of the workspace as bytes and look for
a known text, a golden query and the float32 bytes of a known vector (as stored, and at unit
length as a cosine index keeps it). None may be found. The same steps on a plain collection
find all three (so the search itself works).
"""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path

import faiss
import numpy as np
import pytest
from torture_helpers import publish_tiny, texts

from embedops.engine import Embedops
from embedops.monitor.checks import Window, collection_drift
from embedops.monitor.db import GoldenQuery, MonitorDB
from embedops.monitor.golden import run_golden
from embedops.store.crypto import KEY_ENV

SECRET = "kiwi lime fig date nut seed quokka-7f3a"  # the last word is out of vocabulary
GOLDEN = "tree bush moss wallaby-91c2"


def _needles(api: Embedops) -> dict[str, bytes]:
    ids, vectors = api.load_vectors("vault", api.collections.info("vault").model_version,
                                    ["secret"])
    assert ids == ["secret"]
    raw = np.ascontiguousarray(vectors[0], dtype="<f4")
    unit = raw.reshape(1, -1).copy()
    faiss.normalize_L2(unit)  # as a cosine index keeps it, to the last bit
    return {"text": SECRET.encode(), "marker": b"quokka-7f3a", "golden": b"wallaby-91c2",
            "vector": raw.tobytes(), "unit vector": unit[0].tobytes(),
            "half vector": raw[: len(raw) // 2].tobytes()}


def _found(home: Path, needles: dict[str, bytes]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in sorted(p for p in home.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for name, needle in needles.items():
            if needle in data:
                out.setdefault(name, []).append(str(path.relative_to(home)))
    return out


def _fill(api: Embedops, tmp_path: Path, encrypted: bool) -> None:
    api.collections.create("vault", model="tiny", encrypted=encrypted)
    source = tmp_path / "in.jsonl"  # outside the workspace
    source.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n"
                              for i, t in enumerate(texts(30, 5))))
    api.ingest("vault", source, quiet=True)
    api.upsert_items("vault", [{"id": "secret", "text": SECRET, "metadata": {"k": 1}}])
    api.build_index("vault", "flat")
    api.build_index("vault", "hnsw")
    assert api.search("vault", "kiwi lime fig date nut seed", k=3).hits[0].id == "secret"
    db = MonitorDB(api.workspace)
    try:
        db.create_set("gold", collection="vault")
        db.add_queries("gold", [GoldenQuery(GOLDEN, {"secret": 1.0})])
        assert db.queries("gold")[0].query == GOLDEN
        run_golden(api, db, "vault", "gold", ks=(5,), quiet=True)
        collection_drift(api, "vault", Window(until=1e12), [SECRET, GOLDEN], db=db)
    finally:
        db.close()


@pytest.mark.parametrize("encrypted", [True, False], ids=["encrypted", "plain"])
def test_no_text_or_vector_of_an_encrypted_collection_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encrypted: bool
) -> None:
    key = secrets.token_bytes(32)
    monkeypatch.setenv(KEY_ENV, base64.b64encode(key).decode())
    ws = publish_tiny(tmp_path / "ws")
    with Embedops(ws, key=key) as api:
        _fill(api, tmp_path, encrypted)
        needles = _needles(api)
    with Embedops(ws, key=key) as api:  # a new process: the index is built again, same answers
        assert api.search("vault", "kiwi lime fig date nut seed", k=3).hits[0].id == "secret"
        status = api.index_status("vault")
    found = _found(ws.home, needles)
    assert status.get("storage") == ("memory" if encrypted else "disk"), found
    if encrypted:
        assert found == {}
    else:
        assert {"text", "marker", "golden", "vector", "unit vector"} <= set(found)
        assert any(path.startswith("indexes/") for path in found["unit vector"])
        assert any(path.startswith("monitor.db") for path in found["golden"])


def test_encrypted_golden_queries_need_the_key(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    key = secrets.token_bytes(32)
    monkeypatch.setenv(KEY_ENV, base64.b64encode(key).decode())
    ws = publish_tiny(tmp_path / "ws")
    with Embedops(ws, key=key) as api:
        api.collections.create("vault", model="tiny", encrypted=True)
        db = MonitorDB(ws)  # no engine given: one is opened with the key from the environment
        db.create_set("gold", collection="vault")
        db.add_queries("gold", [GoldenQuery(GOLDEN, {"x": 1.0})])
        db.close()
    monkeypatch.delenv(KEY_ENV)
    db = MonitorDB(ws)
    try:
        from embedops.errors import EncryptionKeyError

        with pytest.raises(EncryptionKeyError):
            db.queries("gold")
        assert db.get_set("gold").n_queries == 1
    finally:
        db.close()


def test_rollback_of_an_in_memory_index_is_refused(tmp_path: Path) -> None:
    from embedops.errors import NotFound

    key = secrets.token_bytes(32)
    ws = publish_tiny(tmp_path / "ws")
    with Embedops(ws, key=key) as api:
        api.collections.create("vault", model="tiny", encrypted=True)
        api.upsert_items("vault", [{"id": "a", "text": "apple pear"}])
        api.build_index("vault")
        with pytest.raises(NotFound, match="memory only"):
            api.rollback_index("vault")
        assert [c.name for c in api.verify_index("vault")] == ["catalog"]


def test_golden_runs_use_the_engines_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key given to the engine (not in the environment) opens the set's queries too."""
    monkeypatch.delenv(KEY_ENV, raising=False)
    key = secrets.token_bytes(32)
    ws = publish_tiny(tmp_path / "ws")
    with Embedops(ws, key=key) as api:
        api.collections.create("vault", model="tiny", encrypted=True)
        api.upsert_items("vault", [{"id": "secret", "text": SECRET}])
        writer = MonitorDB(ws, api)
        writer.create_set("gold", collection="vault")
        writer.add_queries("gold", [GoldenQuery(GOLDEN, {"secret": 1.0})])
        writer.close()
        db = MonitorDB(ws)  # as the CLI and the server open it: the engine comes with the call
        try:
            run = run_golden(api, db, "vault", "gold", ks=(1,), quiet=True)
        finally:
            db.close()
    assert run.scores["recall@1"] == 1.0
