"""Torture: damage every file that decides what is served, then search (issue 21, item 7).

A small real workspace (a static model, a catalog, two flat index snapshots and items written
after the last build) is built once through the public facade; every case copies it, damages
one file in one way, opens a *fresh* ``Embedops`` (the in-memory cache would hide the damage)
and searches. The only acceptable outcomes are the ids that were served before the damage
(from a good older snapshot or a rebuild from the catalog) or a clear ``EmbedopsError``:
never other ids, never another exception type, never a change outside the workspace.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from embedops.api import Embedops
from embedops.config import Workspace
from embedops.errors import EmbedopsError
from embedops.models.registry import Registry
from embedops.models.static import StaticVectors, publish_static
from embedops.text.tokenize import TokenizerSpec

COLLECTION = "docs"
WORDS = ("apple banana cherry grape lemon mango melon olive peach pear plum berry kiwi lime "
         "fig date nut seed leaf root stem bark tree bush moss fern vine reed cane herb").split()
QUERIES = ["apple banana cherry", "moss fern vine", "late ninety one", "peach pear plum"]
K = 5


def _texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=6)) for _ in range(n)]


def _open(home: Path) -> Embedops:
    return Embedops(Workspace(home))


def _search_ids(api: Embedops) -> list[list[str]]:
    return [[h.id for h in api.search(COLLECTION, q, k=K, mode="dense").hits] for q in QUERIES]


def _answers(api: Embedops) -> tuple[list[list[str]], np.ndarray]:
    """What the workspace serves: the ids of each query and the query embeddings."""
    return _search_ids(api), np.asarray(api.embed(QUERIES, model="tiny"))


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """The pristine workspace and its answers (``_answers``)."""
    home = tmp_path_factory.mktemp("torture") / "ws"
    ws = Workspace(home).ensure()
    vocab = [*WORDS, "late", "ninety", "one"]
    rng = np.random.default_rng(7)
    table = StaticVectors(vocab, rng.standard_normal((len(vocab), 16)).astype(np.float32))
    publish_static(Registry(ws), "tiny", table, kind="word2vec", spec=TokenizerSpec())
    api = _open(home)
    try:
        api.collections.create(COLLECTION, model="tiny")
        api.upsert_items(COLLECTION, [{"id": f"a{i}", "text": t, "metadata": {"n": i}}
                                      for i, t in enumerate(_texts(40, 1))])
        api.build_index(COLLECTION, "flat")
        api.upsert_items(COLLECTION, [{"id": f"b{i}", "text": t}
                                      for i, t in enumerate(_texts(20, 2))])
        api.build_index(COLLECTION, "flat")
        # Written after the last build: served only if the catalog sync is intact.
        api.upsert_items(COLLECTION, [{"id": "late", "text": "late ninety one"}])
        api.delete_items(COLLECTION, ["a3"])
        expected = _answers(api)
    finally:
        api.close()
    ids = expected[0]
    assert ids[2][0] == "late" and all(len(hits) == K for hits in ids)
    assert "a3" not in sum(ids, [])
    return home, expected


# --- ways to damage a file --------------------------------------------------------------
def bit_flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: max(0, path.stat().st_size // 2)])


def delete(path: Path) -> None:
    path.unlink()


def empty(path: Path) -> None:
    path.write_bytes(b"")


def json_edit(change: Callable[[dict], None]) -> Callable[[Path], None]:
    """A valid-JSON edit, written back in the same layout."""

    def damage(path: Path) -> None:
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")

    return damage


def write(data: bytes) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        path.write_bytes(data)

    return damage


def foreign(absolute: bool) -> Callable[[Path], None]:
    """Point ``CURRENT`` at the test's victim folder outside the workspace."""

    def damage(path: Path) -> None:
        victim = path.parents[4] / "victim"  # <tmp>/ws/indexes/<collection>/<version>/CURRENT
        target = str(victim) if absolute else os.path.relpath(victim, path.parent)
        path.write_bytes(target.encode() + b"\n")

    return damage


def keys_swap(path: Path) -> None:
    keys = json.loads(path.read_text())
    keys[0], keys[1] = keys[1], keys[0]
    path.write_text(json.dumps(keys))


# --- where ------------------------------------------------------------------------------
def snapshot_root(home: Path) -> Path:
    (root,) = (home / "indexes" / COLLECTION).iterdir()
    return root


def current_snapshot(home: Path) -> Path:
    root = snapshot_root(home)
    return root / (root / "CURRENT").read_text().strip()


def model_dir(home: Path) -> Path:
    return home / "models" / "tiny" / "1"


SNAPSHOT_FILES = ["manifest.json", "keys.json", "index/index.faiss", "index/index.json",
                  "index/ids.npy"]
MANIFEST_EDITS = {
    "catalog_ts": lambda m: m["meta"].__setitem__("catalog_ts", 4e9),
    "item_count": lambda m: m.__setitem__("item_count", 1),
    "files": lambda m: m["files"].__setitem__("keys.json", "0" * 64),
    "dim": lambda m: m.__setitem__("dim", 8),
}
CASES: dict[str, tuple[Callable[[Path], Path], Callable[[Path], None]]] = {}
for rel in SNAPSHOT_FILES:
    for how in (bit_flip, truncate, delete, empty):
        CASES[f"snapshot {rel} {how.__name__}"] = (
            lambda home, rel=rel: current_snapshot(home) / rel, how)
for field, change in MANIFEST_EDITS.items():
    CASES[f"snapshot manifest edit {field}"] = (
        lambda home: current_snapshot(home) / "manifest.json", json_edit(change))
CASES["snapshot stray file"] = (
    lambda home: current_snapshot(home) / "index" / "extra.bin", write(b"x"))
CASES["snapshot keys.json swapped"] = (lambda home: current_snapshot(home) / "keys.json", keys_swap)
CASES["snapshot index.json edit"] = (
    lambda home: current_snapshot(home) / "index/index.json",
    json_edit(lambda m: m.__setitem__("metric", "l2")))
for label, damage in {
    "bit flip": bit_flip, "truncate": truncate, "delete": delete, "empty": empty,
    "absolute path": foreign(absolute=True), "parent path": foreign(absolute=False),
    "non-UTF-8": write(b"\xff\xfe\x80\x00\n"), "missing snapshot": write(
        b"20991231T000000000000Z-abcdef\n"), "folder name": write(b"quarantine\n"),
}.items():
    CASES[f"CURRENT {label}"] = (lambda home: snapshot_root(home) / "CURRENT", damage)
for how in (bit_flip, truncate, delete, empty):
    CASES[f"model manifest {how.__name__}"] = (
        lambda home: model_dir(home) / "manifest.json", how)
    CASES[f"model safetensors {how.__name__}"] = (
        lambda home: model_dir(home) / "vectors.safetensors", how)
    CASES[f"model vocab {how.__name__}"] = (lambda home: model_dir(home) / "vocab.json", how)
CASES["model manifest edit tokenizer"] = (
    lambda home: model_dir(home) / "manifest.json",
    json_edit(lambda m: m["tokenizer"].__setitem__("min_token_len", 5)))


def _retokenize(m: dict) -> None:
    """A careful edit: another tokenizer spec, with its fingerprint recomputed to match."""
    m["tokenizer"]["min_token_len"] = 5
    m["tokenizer_fingerprint"] = TokenizerSpec(**m["tokenizer"]).fingerprint()


CASES["model manifest edit tokenizer and fingerprint"] = (
    lambda home: model_dir(home) / "manifest.json", json_edit(_retokenize))
CASES["model manifest edit dim"] = (
    lambda home: model_dir(home) / "manifest.json", json_edit(lambda m: m.__setitem__("dim", 8)))


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _outcome(api: Embedops, expected: Any) -> str:
    """'served' when every query gives the expected ids and embeddings; 'refused' on a clear
    error (each of search and embed may refuse on its own: a damaged model breaks both)."""
    outcomes = []
    for i, ask in enumerate((_search_ids, lambda a: np.asarray(a.embed(QUERIES, model="tiny")))):
        try:
            got = ask(api)
        except EmbedopsError as exc:
            assert exc.message, "an error without a message"
            outcomes.append("refused")
            continue
        if i == 0:
            assert got == expected[0], "damage changed the search results undetected"
        else:
            np.testing.assert_allclose(got, expected[1], err_msg="damage changed embeddings")
        outcomes.append("served")
    return "served" if outcomes == ["served", "served"] else "refused"


@pytest.mark.parametrize("case", sorted(CASES))
def test_damage_is_detected_or_survived(base, tmp_path: Path, case: str) -> None:
    pristine, expected = base
    home = tmp_path / "ws"
    shutil.copytree(pristine, home)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep")
    where, damage = CASES[case]
    damage(where(home))
    outside = {p: _tree(p) for p in (victim,)}

    api = _open(home)
    try:
        first = _outcome(api, expected)
        for call in (lambda: api.index_status(COLLECTION), lambda: api.verify_index(COLLECTION)):
            try:
                call()
            except EmbedopsError:
                pass
    finally:
        api.close()
    # A second fresh facade sees the state the first one left behind (quarantine, rebuild).
    api = _open(home)
    try:
        second = _outcome(api, expected)
    finally:
        api.close()
    if case.startswith(("snapshot", "CURRENT")):  # rebuildable from the catalog: served
        assert first == second == "served", case
    assert {p: _tree(p) for p in outside} == outside


def test_every_snapshot_damaged_at_once_is_rebuilt(base, tmp_path: Path) -> None:
    pristine, expected = base
    home = tmp_path / "ws"
    shutil.copytree(pristine, home)
    root = snapshot_root(home)
    for snap in root.iterdir():
        if snap.is_dir() and (snap / "manifest.json").exists():
            json_edit(MANIFEST_EDITS["catalog_ts"])(snap / "manifest.json")
    api = _open(home)
    try:
        assert _outcome(api, expected) == "served"
        assert all(c.ok for c in api.verify_index(COLLECTION))
    finally:
        api.close()
