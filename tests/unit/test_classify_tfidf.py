"""Classify with ``features="embedding+tfidf"``: TF-IDF of the texts beside the vectors, stored
with the head (checksummed), applied the same way at prediction; on real WordNet glosses (part
of speech as the label) and a small static model trained on the Lee corpus."""

from __future__ import annotations

import json
import lzma
from pathlib import Path

import pytest

from embedops.data import wordnet_glosses_path
from embedops.engine import Embedops
from embedops.errors import IntegrityError, InvalidInput
from embedops.models.registry import Registry
from embedops.train import TrainConfig, train_static
from embedops.usecases import classify


def _glosses(n: int, skip: int = 0) -> list[dict[str, str]]:
    rows = []
    step = 117_659 // n  # spread over the whole file (it is sorted by part of speech)
    with lzma.open(wordnet_glosses_path(), "rt", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i % step != skip:
                continue
            synset = json.loads(line)
            rows.append({"id": synset["id"], "text": synset["gloss"], "pos": synset["pos"]})
            if len(rows) == n:
                break
    return rows


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, lee_corpus: Path):  # type: ignore[no-untyped-def]
    from embedops.config import Workspace

    ws = Workspace(tmp_path_factory.mktemp("clf") / "ws").ensure()
    config = TrainConfig(model="word2vec", epochs=2, dim=16, workers=1)
    mv = train_static(lee_corpus, "lee", config, Registry(ws)).version
    eo = Embedops(ws)
    eo.collections.create("glosses", model=mv.ref)
    rows = _glosses(1200)
    eo.upsert_items("glosses", [{"id": r["id"], "text": r["text"],
                                 "metadata": {"pos": r["pos"]}} for r in rows])
    plain = classify.train(eo, "glosses", "pos", name="plain", test_size=0.2)
    both = classify.train(eo, "glosses", "pos", name="both", test_size=0.2,
                          features="embedding+tfidf")
    yield eo, plain, both
    eo.close()


def test_tfidf_features_are_stored_and_beat_weak_vectors_on_held_out_texts(trained) -> None:  # type: ignore[no-untyped-def]
    eo, plain, both = trained
    assert plain.manifest["features"] == "embedding" and not plain.needs_texts
    assert both.manifest["features"] == "embedding+tfidf" and both.needs_texts
    assert both.coef.shape[1] == 16 + len(both.text_features)
    held_out = _glosses(400, skip=37)
    texts, gold = [r["text"] for r in held_out], [r["pos"] for r in held_out]
    scores = {c.manifest["ref"]: classify.evaluate(eo, c.manifest["ref"], texts, gold)
              for c in (plain, both)}
    # 16-dim vectors from 60k words of news barely tell a verb's gloss from a noun's; the
    # glosses' own words ("to", "of or relating to", "in a ... manner") do.
    assert scores["both@1"]["macro_f1"] > scores["plain@1"]["macro_f1"] + 0.1


def test_a_loaded_head_predicts_as_the_trained_one(trained) -> None:  # type: ignore[no-untyped-def]
    eo, _, both = trained
    texts = ["to move fast on foot", "a large natural stream of water", "in a quick manner"]
    loaded = classify.load(eo, "both")
    vectors = eo.embed(texts, both.model_version)
    fresh = both.proba(vectors, both.model_version, texts)
    again = loaded.proba(vectors, both.model_version, texts)
    assert (abs(fresh - again) < 1e-6).all()
    assert [p.label for p in classify.predict_texts(eo, "both", texts)] == [
        loaded.labels[i] for i in again.argmax(1)]
    ids = [it.id for it in eo.peek("glosses", 3)]
    assert set(classify.predict_items(eo, "both", "glosses", ids)) == set(ids)
    with pytest.raises(InvalidInput, match="needs the texts"):
        loaded.proba(vectors, both.model_version)
    with pytest.raises(InvalidInput, match="unknown features"):
        classify.train(eo, "glosses", "pos", name="x", features="tfidf-only")


def test_damaged_tfidf_terms_are_detected(trained) -> None:  # type: ignore[no-untyped-def]
    eo, _, both = trained
    folder = eo.workspace.usecases_dir / classify.KIND / "both" / "1"
    arrays = next(p for p in folder.iterdir() if p.suffix == ".safetensors")
    data = bytearray(arrays.read_bytes())
    data[-5] ^= 0xFF  # inside the last tensor's bytes
    arrays.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        classify.load(eo, "both")


def test_the_cli_trains_with_tfidf_features(trained, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from embedops.cli.main import main

    eo, _, _ = trained
    monkeypatch.setenv("EMBEDOPS_HOME", str(eo.workspace.home))
    assert main(["-q", "classify", "train", "glosses", "--label-field", "pos", "--name", "cli",
                 "--features", "embedding+tfidf", "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["features"] == "embedding+tfidf" and manifest["ref"] == "cli@1"
    assert main(["-q", "classify", "train", "glosses", "--label-field", "pos",
                 "--features", "words"]) == 1
    assert "unknown features 'words'" in capsys.readouterr().err
