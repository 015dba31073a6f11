"""Intrinsic evaluation: numbers agree with gensim's evaluate_word_pairs/_analogies; parsing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embedops.errors import FormatError, InvalidInput
from embedops.evaluate.intrinsic import (
    evaluate_analogies,
    evaluate_model,
    evaluate_pairs,
    evaluate_suite,
    read_analogies,
    read_pairs,
    suite_path,
)
from embedops.models.static import StaticVectors, publish_static
from embedops.text.tokenize import TokenizerSpec


@pytest.fixture(scope="module")
def kv(lee_corpus: Path):  # type: ignore[no-untyped-def]
    """A cased word2vec model (raw whitespace tokens), so case folding matters."""
    from gensim.models import Word2Vec

    sentences = [line.split() for line in lee_corpus.read_text().splitlines()]
    return Word2Vec(sentences, vector_size=24, min_count=1, epochs=2, seed=7, workers=1).wv


@pytest.fixture(scope="module")
def table(kv) -> StaticVectors:  # type: ignore[no-untyped-def]
    return StaticVectors.from_gensim(kv)


@pytest.mark.parametrize("suite", ["wordsim353", "simlex999"])
@pytest.mark.parametrize("restrict", [300_000, 2_000])
def test_pairs_agree_with_gensim(kv, table: StaticVectors, suite: str, restrict: int) -> None:  # type: ignore[no-untyped-def]
    ours = evaluate_pairs(table, suite_path(suite), restrict_vocab=restrict)
    pearson, spearman, oov_pct = kv.evaluate_word_pairs(suite_path(suite), restrict_vocab=restrict)
    assert ours.spearman == pytest.approx(spearman[0], abs=1e-6)
    assert ours.pearson == pytest.approx(pearson[0], abs=1e-6)
    assert 100 * ours.oov_rate == pytest.approx(oov_pct)
    assert ours.n_pairs == (353 if suite == "wordsim353" else 999)


@pytest.mark.parametrize("restrict", [300_000, 3_000])
def test_analogies_agree_with_gensim(kv, table: StaticVectors, restrict: int) -> None:  # type: ignore[no-untyped-def]
    path = suite_path("google-analogy")
    ours = evaluate_analogies(table, path, restrict_vocab=restrict, quiet=True)
    score, sections = kv.evaluate_word_analogies(path, restrict_vocab=restrict)
    total = sections[-1]
    assert ours.evaluated == len(total["correct"]) + len(total["incorrect"]) > 0
    assert ours.correct == len(total["correct"])
    assert ours.accuracy == pytest.approx(score)
    by_name = {s["section"]: s for s in sections[:-1]}
    for section in ours.sections:
        theirs = by_name[section.name]
        assert section.correct == len(theirs["correct"])
        assert section.evaluated == len(theirs["correct"]) + len(theirs["incorrect"])
    assert ours.evaluated + ours.n_oov == 19544


def test_3cosmul_agrees_with_gensim_cosmul(kv, table: StaticVectors, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sections = read_analogies(suite_path("google-analogy"))
    vocab = set(table.index_to_key)
    lines = [": family"]
    questions = [q for _, qs in sections for q in qs if all(w.lower() in vocab for w in q)][:60]
    lines += [" ".join(w.lower() for w in q) for q in questions]
    path = tmp_path / "q.txt"
    path.write_text("\n".join(lines) + "\n")
    ours = evaluate_analogies(table, path, method="3cosmul", quiet=True)
    expected = sum(
        kv.most_similar_cosmul(positive=[b, c], negative=[a], topn=1)[0][0] == d
        for a, b, c, d in (tuple(w.lower() for w in q) for q in questions)
    )
    assert ours.evaluated == len(questions) and ours.correct == expected


def test_pair_files_in_other_layouts(tmp_path: Path, table: StaticVectors) -> None:
    spaced = tmp_path / "spaced.txt"
    spaced.write_text("# comment\n\nthe  police 3.5\nsaid government 1\nthe said 2.0\n")
    assert read_pairs(spaced) == [
        ("the", "police", 3.5),
        ("said", "government", 1.0),
        ("the", "said", 2.0),
    ]
    simlex = tmp_path / "SimLex-999.txt"
    simlex.write_text(
        "word1\tword2\tPOS\tSimLex999\tconc(w1)\n"
        "old\tnew\tA\t1.58\t2.72\nsmart\tintelligent\tA\t9.2\t1.75\n"
    )
    assert read_pairs(simlex) == [("old", "new", 1.58), ("smart", "intelligent", 9.2)]
    result = evaluate_pairs(table, spaced)
    assert result.n_pairs == 3 and result.n_oov == 0 and -1 <= result.spearman <= 1
    json.dumps(result.to_dict())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a b 1\nc d\n", "line 2 .* 2 fields"),
        ("a b 1\nc d x\n", "line 2 .* not a number"),
        ("# only a comment\n", "no word pairs"),
    ],
)
def test_bad_pair_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "pairs.txt"
    path.write_text(content)
    with pytest.raises(FormatError, match=message):
        read_pairs(path)


def test_bad_analogy_files_and_arguments(tmp_path: Path, table: StaticVectors) -> None:
    path = tmp_path / "a.txt"
    path.write_text(": s\na b c\n")
    with pytest.raises(FormatError, match="line 2 .* 3 words, expected 4"):
        read_analogies(path)
    path.write_text("a b c d\n")
    assert read_analogies(path) == [("all", [("a", "b", "c", "d")])]
    with pytest.raises(InvalidInput, match="unknown analogy method"):
        evaluate_analogies(table, path, method="3cosx")
    with pytest.raises(InvalidInput, match="unknown evaluation suite 'ws'"):
        suite_path("ws")
    with pytest.raises(InvalidInput, match="no such evaluation file"):
        evaluate_pairs(table, tmp_path / "missing.txt")
    with pytest.raises(InvalidInput, match="restrict_vocab"):
        evaluate_pairs(table, suite_path("wordsim353"), restrict_vocab=0)
    oov = tmp_path / "oov.txt"
    oov.write_text("qqq zzz 1\nxxx yyy 2\n")
    with pytest.raises(InvalidInput, match="only 0 of 2 pairs"):
        evaluate_pairs(table, oov)


def test_evaluate_model_records_in_manifest(registry, table: StaticVectors, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    publish_static(registry, "lee", table, kind="word2vec", spec=TokenizerSpec(lowercase=False))
    pairs = tmp_path / "mine.tsv"
    pairs.write_text("the\tpolice\t3\nsaid\tgovernment\t1\nthe\tsaid\t2\n")
    results = evaluate_model(registry, "lee", suites=["wordsim353"], pairs=[str(pairs)], quiet=True)
    assert set(results) == {"wordsim353", "pairs:mine.tsv"}
    stored = registry.get("lee@1").manifest["eval"]
    assert stored["wordsim353"] == json.loads(json.dumps(results["wordsim353"].to_dict()))
    assert registry.get("lee@1", verify=True)  # annotations do not break checksums
    google = evaluate_suite(table, "google-analogy", restrict_vocab=500, quiet=True)
    assert google.to_dict()["sections"][0]["name"] == "capital-common-countries"
    with pytest.raises(InvalidInput, match="unknown evaluation suite"):
        evaluate_model(registry, "lee", suites=["nope"])
    with registry.draft("tf", "transformer", dim=4) as draft:
        (draft.path / "x.json").write_text("{}")
    with pytest.raises(InvalidInput, match="transformer model"):
        evaluate_model(registry, "tf")
    assert np.isfinite(results["pairs:mine.tsv"].spearman)
