"""Intrinsic evaluation of word vectors: word-pair similarity and word analogies.

* Pair files: ``word1 word2 score`` per line (tab- or whitespace-separated), ``#`` comments,
  and an optional header line (SimLex-999's own header is recognised, and its ``SimLex999``
  column is used as the score). Scored with Spearman and Pearson correlation.
* Analogy files: Google's ``questions-words`` format, ``: section`` lines followed by
  ``a b c d`` lines (a : b :: c : d). Accuracy per section and in total.

Both follow gensim's conventions (``evaluate_word_pairs`` / ``evaluate_word_analogies``):
case-insensitive matching that takes the most frequent casing, a ``restrict_vocab`` cut-off
(the first N words), and out-of-vocabulary items skipped but counted. Built-in suites use the
data gensim ships: ``wordsim353``, ``simlex999`` and ``google-analogy``.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedops.errors import FormatError, InvalidInput
from embedops.models.registry import Registry
from embedops.models.static import StaticVectors, analogy_scores, check_analogy_method
from embedops.progress import progress_bar

SUITES: dict[str, tuple[str, str]] = {
    "wordsim353": ("pairs", "wordsim353.tsv"),
    "simlex999": ("pairs", "simlex999.txt"),
    "google-analogy": ("analogies", "questions-words.txt"),
}
DEFAULT_RESTRICT = 300_000
_TOP = 5  # candidates checked per question, as gensim does
_BATCH_CELLS = 8_000_000  # scores computed at once (batch x vocabulary)


@dataclass(frozen=True)
class PairsResult:
    """Correlation of model cosine similarities with human scores on one pair file."""

    dataset: str
    spearman: float
    pearson: float
    n_pairs: int
    n_oov: int

    @property
    def oov_rate(self) -> float:
        """Share of items skipped because a word is out of vocabulary."""
        return self.n_oov / self.n_pairs if self.n_pairs else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN correlations become None)."""
        d = {k: _finite(v) for k, v in asdict(self).items()}
        return {**d, "kind": "pairs", "oov_rate": self.oov_rate}


@dataclass(frozen=True)
class SectionScore:
    """Analogy accuracy of one section: ``correct`` of ``evaluated`` in-vocabulary questions."""

    name: str
    correct: int
    evaluated: int
    n_oov: int

    @property
    def accuracy(self) -> float:
        """Correct answers over evaluated (in-vocabulary) questions."""
        return self.correct / self.evaluated if self.evaluated else 0.0


@dataclass(frozen=True)
class AnalogyResult:
    """Analogy accuracy overall and per section (OOV questions are skipped and counted)."""

    dataset: str
    method: str
    restrict_vocab: int
    sections: tuple[SectionScore, ...] = field(default_factory=tuple)

    @property
    def correct(self) -> int:
        """Correctly answered questions, all sections."""
        return sum(s.correct for s in self.sections)

    @property
    def evaluated(self) -> int:
        """Questions with all four words in vocabulary, all sections."""
        return sum(s.evaluated for s in self.sections)

    @property
    def n_oov(self) -> int:
        """Questions skipped for an out-of-vocabulary word."""
        return sum(s.n_oov for s in self.sections)

    @property
    def accuracy(self) -> float:
        """Correct answers over evaluated (in-vocabulary) questions."""
        return self.correct / self.evaluated if self.evaluated else 0.0

    @property
    def oov_rate(self) -> float:
        """Share of items skipped because a word is out of vocabulary."""
        total = self.evaluated + self.n_oov
        return self.n_oov / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary with per-section accuracy."""
        return {
            "kind": "analogies",
            "dataset": self.dataset,
            "method": self.method,
            "restrict_vocab": self.restrict_vocab,
            "accuracy": self.accuracy,
            "correct": self.correct,
            "evaluated": self.evaluated,
            "n_oov": self.n_oov,
            "oov_rate": self.oov_rate,
            "sections": [{**asdict(s), "accuracy": s.accuracy} for s in self.sections],
        }


IntrinsicResult = PairsResult | AnalogyResult


# -- files -----------------------------------------------------------------------------------
def suite_path(name: str) -> Path:
    """Path of a built-in suite's data file (shipped with gensim)."""
    if name not in SUITES:
        raise InvalidInput(f"unknown evaluation suite '{name}'", f"use one of {', '.join(SUITES)}")
    from gensim.test.utils import datapath

    return Path(datapath(SUITES[name][1]))


def read_pairs(path: str | os.PathLike[str]) -> list[tuple[str, str, float]]:
    """``(word1, word2, score)`` triples of a pair file (see the module docstring)."""
    source = _existing(path)
    pairs: list[tuple[str, str, float]] = []
    score_col = 2
    for line_no, fields in _lines(source):
        if len(fields) < 3:
            raise FormatError(
                f"line {line_no} of {source.name} has {len(fields)} fields, expected "
                "'word1 word2 score'",
                "separate the fields with tabs or spaces",
            )
        value = _number(fields[score_col]) if score_col < len(fields) else None
        if value is None and not pairs and score_col == 2:
            lowered = [f.lower().replace("-", "") for f in fields]
            score_col = lowered.index("simlex999") if "simlex999" in lowered else 2
            continue  # a header line
        if value is None:
            raise FormatError(
                f"line {line_no} of {source.name}: the score is not a number",
                "each line is 'word1 word2 score'",
            )
        pairs.append((fields[0], fields[1], value))
    if not pairs:
        raise FormatError(f"{source.name} has no word pairs", "each line is 'word1 word2 score'")
    return pairs


def read_analogies(path: str | os.PathLike[str]) -> list[tuple[str, list[tuple[str, ...]]]]:
    """Sections of an analogy file: ``[(section name, [(a, b, c, d), ...]), ...]``."""
    source = _existing(path)
    sections: list[tuple[str, list[tuple[str, ...]]]] = []
    for line_no, fields in _lines(source, comments=False):
        if fields[0] == ":":
            sections.append((" ".join(fields[1:]) or f"section {len(sections) + 1}", []))
            continue
        if len(fields) != 4:
            raise FormatError(
                f"line {line_no} of {source.name} has {len(fields)} words, expected 4 (a b c d)",
                "analogy lines are 'a b c d' meaning a : b :: c : d; sections start with ': '",
            )
        if not sections:
            sections.append(("all", []))
        sections[-1][1].append(tuple(fields))
    if not any(questions for _, questions in sections):
        raise FormatError(f"{source.name} has no analogy questions", "lines are 'a b c d'")
    return sections


# -- evaluation ------------------------------------------------------------------------------
def evaluate_pairs(
    table: StaticVectors,
    path: str | os.PathLike[str],
    *,
    restrict_vocab: int = DEFAULT_RESTRICT,
    case_insensitive: bool = True,
    dataset: str | None = None,
) -> PairsResult:
    """Spearman and Pearson correlation between cosine similarity and the file's scores."""
    from scipy import stats

    pairs = read_pairs(path)
    vocab = _vocab(table, restrict_vocab, case_insensitive)
    fold = str.upper if case_insensitive else str
    gold: list[float] = []
    model: list[float] = []
    units = table.unit_vectors
    for a, b, score in pairs:
        ia, ib = vocab.get(fold(a)), vocab.get(fold(b))
        if ia is not None and ib is not None:
            gold.append(score)
            model.append(float(np.dot(units[ia], units[ib])))
    if len(gold) < 2:
        raise InvalidInput(
            f"only {len(gold)} of {len(pairs)} pairs in {Path(path).name} are in the vocabulary "
            f"of {table.name}",
            "use a model with a larger vocabulary, or another pair file",
        )
    return PairsResult(
        dataset=dataset or Path(path).name,
        spearman=float(stats.spearmanr(gold, model)[0]),
        pearson=float(stats.pearsonr(gold, model)[0]),
        n_pairs=len(pairs),
        n_oov=len(pairs) - len(gold),
    )


def evaluate_analogies(
    table: StaticVectors,
    path: str | os.PathLike[str],
    *,
    method: str = "3cosadd",
    restrict_vocab: int = DEFAULT_RESTRICT,
    case_insensitive: bool = True,
    dataset: str | None = None,
    quiet: bool | None = None,
) -> AnalogyResult:
    """Accuracy on ``a : b :: c : d`` questions: the best word other than a, b, c must be d."""
    check_analogy_method(method)
    sections = read_analogies(path)
    vocab = _vocab(table, restrict_vocab, case_insensitive)
    fold = str.upper if case_insensitive else str
    limit = min(restrict_vocab, len(table))
    scores: list[SectionScore] = []
    total = sum(len(q) for _, q in sections)
    with progress_bar("analogies", total, "questions", quiet) as bar:
        for name, questions in sections:
            folded = [tuple(fold(w) for w in q) for q in questions]
            known = [q for q in folded if all(w in vocab for w in q)]
            correct = _solve(table, vocab, known, limit, method, fold)
            scores.append(SectionScore(name, correct, len(known), len(questions) - len(known)))
            bar.advance(len(questions))
    return AnalogyResult(dataset or Path(path).name, method, restrict_vocab, tuple(scores))


def _solve(
    table: StaticVectors,
    vocab: dict[str, int],
    questions: list[tuple[str, ...]],
    limit: int,
    method: str,
    fold: Any,
) -> int:
    """How many questions have their expected word as the first non-input candidate."""
    if not questions:
        return 0
    units = table.unit_vectors[:limit]
    index = np.array([[vocab[w] for w in q] for q in questions], dtype=np.int64)
    batch = max(1, _BATCH_CELLS // (limit * (3 if method == "3cosmul" else 1)))
    top = min(_TOP, limit)
    correct = 0
    for start in range(0, len(questions), batch):
        rows = index[start : start + batch]
        scores = analogy_scores(units, units[rows[:, :3]], method)
        np.put_along_axis(scores, rows[:, :3], -np.inf, axis=1)
        best = np.argpartition(-scores, top - 1, axis=1)[:, :top]
        order = np.argsort(-np.take_along_axis(scores, best, axis=1), axis=1, kind="stable")
        best = np.take_along_axis(best, order, axis=1)
        for q, candidates in zip(questions[start : start + batch], best, strict=True):
            inputs = set(q[:3])
            predicted = next(
                (
                    w
                    for w in map(fold, (table.index_to_key[i] for i in candidates))
                    if w not in inputs
                ),
                None,
            )
            correct += predicted == q[3]
    return correct


def evaluate_suite(table: StaticVectors, name: str, **options: Any) -> IntrinsicResult:
    """Run a built-in suite (``wordsim353``, ``simlex999`` or ``google-analogy``)."""
    path = suite_path(name)
    if SUITES[name][0] == "pairs":
        options.pop("method", None)
        options.pop("quiet", None)
        return evaluate_pairs(table, path, dataset=name, **options)
    return evaluate_analogies(table, path, dataset=name, **options)


def evaluate_model(
    registry: Registry,
    ref: str,
    *,
    suites: tuple[str, ...] | list[str] = (),
    pairs: tuple[str, ...] | list[str] = (),
    analogies: tuple[str, ...] | list[str] = (),
    method: str = "3cosadd",
    restrict_vocab: int = DEFAULT_RESTRICT,
    record: bool = True,
    quiet: bool | None = None,
) -> dict[str, IntrinsicResult]:
    """Evaluate a static model on named suites and/or pair and analogy files.

    Results are keyed by suite name (``pairs:<file>`` / ``analogies:<file>`` for files) and,
    with ``record``, stored in the model's manifest under ``eval`` (``Registry.record_eval``).
    """
    for name in suites:
        suite_path(name)  # unknown names fail before any work
    mv = registry.get(ref)
    table = StaticVectors.read(mv)
    opts: dict[str, Any] = {"restrict_vocab": restrict_vocab}
    results: dict[str, IntrinsicResult] = {}
    for name in suites or (() if pairs or analogies else tuple(SUITES)):
        results[name] = evaluate_suite(table, name, method=method, quiet=quiet, **opts)
    for path in pairs:
        results[f"pairs:{Path(path).name}"] = evaluate_pairs(table, path, **opts)
    for path in analogies:
        results[f"analogies:{Path(path).name}"] = evaluate_analogies(
            table, path, method=method, quiet=quiet, **opts
        )
    if record:
        for key, result in results.items():
            registry.record_eval(mv.ref, key, result.to_dict())
    return results


# -- helpers ---------------------------------------------------------------------------------
def _vocab(table: StaticVectors, restrict_vocab: int, case_insensitive: bool) -> dict[str, int]:
    """Word -> row over the first ``restrict_vocab`` words; upper-cased keys map to the most
    frequent (first) casing, as in gensim."""
    if restrict_vocab <= 0:
        raise InvalidInput(f"restrict_vocab must be a positive integer, got {restrict_vocab}")
    keys = table.index_to_key[:restrict_vocab]
    if not case_insensitive:
        return {k: i for i, k in enumerate(keys)}
    return {k.upper(): i for i, k in reversed(list(enumerate(keys)))}


def _existing(path: str | os.PathLike[str]) -> Path:
    source = Path(path)
    if not source.is_file():
        raise InvalidInput(f"no such evaluation file: {source}", "check the path")
    return source


def _lines(source: Path, comments: bool = True) -> Any:
    """(line number, fields) of the non-blank (and, with ``comments``, non-``#``) lines."""
    with open(source, "rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise FormatError(
                    f"line {line_no} of {source.name} is not valid UTF-8", "re-encode it as UTF-8"
                ) from exc
            if comments and text.startswith("#"):
                continue
            fields = text.split("\t") if "\t" in text else text.split()
            fields = [f.strip() for f in fields if f.strip()]
            if fields:
                yield line_no, fields


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value
