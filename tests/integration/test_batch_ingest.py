"""Ingest and backfill through an executor (``engine.batch``) store exactly what the plain paths
store, also when every window is planned before any is written (as on Ray), on a file with
duplicates across windows, deletes, a delete and re-add of an unchanged item and bad lines."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from serve_helpers import lee_documents, publish_lee_model

from embedops.api import Embedops
from embedops.config import Workspace
from embedops.engine.executors import (
    LocalExecutor,
    RayExecutor,
    Window,
    _reassemble,
    batch_executor,
)
from embedops.engine.models import ModelHub
from embedops.errors import InvalidInput, Unavailable

DOCS = lee_documents(60)


class PlanAhead(LocalExecutor):
    """Plans every window before embedding any (what RayExecutor does with a chunk)."""

    name = "plan-ahead"

    def embed(self, hub: ModelHub, versions: Sequence[str],
              windows: Iterable[Window]) -> Iterator[tuple[Window, dict[str, np.ndarray]]]:
        yield from super().embed(hub, versions, list(windows))


def _file(path: Path) -> Path:
    lines = [json.dumps({"id": d["id"], "text": d["text"], **d["metadata"]}) for d in DOCS[:40]]
    lines.insert(8, json.dumps({"id": "doc50", "gone": True}))  # deletes a stored item...
    lines += [
        json.dumps({"id": "doc3", "text": "rewritten in a later window", "n": 3}),
        "{not json",
        json.dumps({"id": "doc5", "text": DOCS[5]["text"], "n": 5, "half": "a"}),  # unchanged
        json.dumps({"id": "doc50", "text": DOCS[50]["text"], "n": 50, "half": "b"}),  # ...re-add
        json.dumps({"id": "doc7", "text": ""}),  # no text: a failed line
    ]
    lines += [json.dumps({"id": d["id"], "text": d["text"] + " again", **d["metadata"]})
              for d in DOCS[38:44]]
    path.write_text("\n".join(lines) + "\n")
    return path


def _state(eo: Embedops) -> tuple[Any, ...]:
    items = sorted((it.id, it.text, json.dumps(it.metadata, sort_keys=True))
                   for it in eo.iter_items("c"))
    ids, vectors = eo.load_vectors("c", "lee")
    order = np.argsort(ids)
    return items, [ids[i] for i in order], np.asarray(vectors)[order]


@pytest.fixture(scope="module")
def model_ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = Workspace(tmp_path_factory.mktemp("model") / "ws").ensure()
    publish_lee_model(ws)
    return ws


def _fresh(model_ws: Workspace, folder: Path) -> Embedops:
    import shutil

    ws = Workspace(folder / "ws").ensure()
    shutil.copytree(model_ws.models_dir, ws.models_dir, dirs_exist_ok=True)
    eo = Embedops(ws)
    eo.collections.create("c", model="lee")
    eo.upsert_items("c", [DOCS[5], DOCS[50]])
    return eo


@pytest.mark.parametrize("executor", [LocalExecutor(), PlanAhead()], ids=["local", "plan-ahead"])
def test_ingest_through_an_executor_stores_what_a_plain_ingest_stores(
    model_ws: Workspace, tmp_path: Path, executor: LocalExecutor,
) -> None:
    source = _file(tmp_path / "items.jsonl")
    reports, states = [], []
    for name, how in (("plain", None), ("executor", executor)):
        with _fresh(model_ws, tmp_path / name) as eo:
            report = eo.ingest("c", source, batch_size=8, delete_field="gone",
                               delete_missing=False, quiet=True, executor=how)
            reports.append({k: v for k, v in report.to_dict().items()
                            if k not in ("run_id", "seconds")})
            states.append(_state(eo))
    assert reports[0] == reports[1]
    assert reports[0]["deleted"] == 1 and reports[0]["failed_count"] == 2
    assert states[0][0] == states[1][0] and states[0][1] == states[1][1]
    assert any(i == "doc50" for i, _, _ in states[1][0])  # deleted, then added back
    np.testing.assert_array_equal(states[0][2], states[1][2])


def test_backfill_through_an_executor_fills_the_same_vectors(
    model_ws: Workspace, tmp_path: Path,
) -> None:
    got = []
    for name, how in (("plain", None), ("executor", PlanAhead())):
        with _fresh(model_ws, tmp_path / name) as eo:
            eo.upsert_items("c", DOCS[:30])
            eo.set_candidate("c", "lee")  # the same version: nothing missing yet
            with eo._catalog._write() as conn:  # noqa: SLF001 - make vectors go missing
                conn.execute("DELETE FROM vectors WHERE rowid % 3 = 0")
            missing = len(eo.missing_vectors("c", "lee"))
            seen: list[tuple[int, int]] = []
            done, total = eo.backfill("c", "lee", batch=7, executor=how,
                                      on_progress=lambda d, t, s=seen: s.append((d, t)))
            assert missing and (done, total) == (31, 31) and seen[-1] == (31, 31)
            got.append(_state(eo))
    assert got[0][1] == got[1][1]
    np.testing.assert_array_equal(got[0][2], got[1][2])


def test_windows_come_back_whole_and_in_order(model_ws: Workspace) -> None:
    hub = ModelHub(__import__("embedops.models.registry", fromlist=["Registry"])
                   .Registry(model_ws))
    windows = [Window(0, ["a", "b"], ["x", "yy"]), Window(1, [], []), Window(2, ["c"], ["z"])]
    vec = "vec:lee@1"

    def batch(keys: list[int], pos: list[int]) -> dict[str, np.ndarray]:
        values = np.asarray([[k * 10 + p] * 32 for k, p in zip(keys, pos, strict=True)],
                            np.float32)
        return {"window": np.asarray(keys), "pos": np.asarray(pos), vec: values}

    out = list(_reassemble(windows, iter([batch([0, 2], [1, 0]), batch([0], [0])]),
                           ["lee@1"], hub))
    assert [w.key for w, _ in out] == [0, 1, 2]
    assert out[0][1]["lee@1"][:, 0].tolist() == [0, 1] and out[1][1]["lee@1"].shape == (0, 32)
    with pytest.raises(Unavailable, match="run the same command again"):
        list(_reassemble(windows, iter([batch([0], [0])]), ["lee@1"], hub))


def test_executor_options_are_checked() -> None:
    with batch_executor(False) as none:
        assert none is None
    with pytest.raises(InvalidInput, match="need --ray"):
        with batch_executor(False, "auto"):
            pass
    for bad in ({"workers": 0}, {"workers": True}, {"cpus_per_worker": 0}):
        with pytest.raises(InvalidInput):
            RayExecutor("local", **bad)  # type: ignore[arg-type]
