"""Property test: any sequence of upserts and deletes leaves the catalog equal to a plain dict
model of it (live items, texts, counts, vectors), plain and encrypted."""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embedops.config import Workspace
from embedops.store import Catalog, ItemIn

IDS = ["a", "b", "c", "d", "e"]
TEXTS = ["red fox", "blue whale", "green tea"]

upsert_op = st.tuples(
    st.just("upsert"),
    st.lists(st.tuples(st.sampled_from(IDS), st.sampled_from(TEXTS)), min_size=1, max_size=4,
             unique_by=lambda p: p[0]),
)
delete_op = st.tuples(st.just("delete"), st.lists(st.sampled_from(IDS), max_size=3))
ops = st.lists(st.one_of(upsert_op, delete_op), min_size=1, max_size=12)


def _vector(text: str) -> np.ndarray:
    return np.array([len(text), TEXTS.index(text) + 1.0], dtype=np.float32)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops, encrypted=st.booleans())
def test_catalog_matches_a_dict_model(ops: list, encrypted: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cat = Catalog(Workspace(Path(tmp)), key=secrets.token_bytes(32) if encrypted else None)
        cat.create_collection("c", "m@1", dim=2, encrypted=encrypted)
        model: dict[str, str] = {}
        for kind, arg in ops:
            if kind == "upsert":
                items = [ItemIn(i, t) for i, t in arg]
                todo = cat.plan_upsert("c", items)
                expected = [it for it in items if model.get(it.id) != it.text]
                assert todo == expected
                vecs = np.stack([_vector(it.text) for it in todo]) if todo else np.zeros((0, 2))
                cat.upsert("c", todo, {"m@1": vecs})
                model.update(dict(arg))
            else:
                gone = cat.delete("c", arg)
                assert gone == len(set(arg) & set(model))
                for i in arg:
                    model.pop(i, None)
        assert cat.get_collection("c").item_count == len(model)
        live = {it.id: it.text for it in cat.iter_items("c", batch=2)}
        assert live == model
        ids, vecs = cat.load_vectors("c", "m@1")
        assert sorted(ids) == sorted(model) and cat.missing_vectors("c", "m@1") == []
        for item_id, row in zip(ids, vecs, strict=True):
            np.testing.assert_array_equal(row, _vector(model[item_id]))
        cat.close()
