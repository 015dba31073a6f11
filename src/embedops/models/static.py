"""Static word vectors: a gensim-shaped table (``index_to_key``, ``key_to_index``, ``vectors``,
cached norms, read-only views), optional fastText n-gram buckets for out-of-vocabulary words,
saved as a ModelVersion in safetensors plus a JSON vocabulary.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from embedops.errors import (
    DimensionMismatch,
    FormatError,
    IntegrityError,
    InvalidInput,
    OutOfVocabulary,
)
from embedops.models.registry import ModelVersion, Registry
from embedops.text.tokenize import TokenizerSpec
from embedops.types import FloatArray

VECTORS_FILE = "vectors.safetensors"
VOCAB_FILE = "vocab.json"
STATIC_KINDS = ("word2vec", "fasttext", "static", "distilled")
ANALOGY_METHODS = ("3cosadd", "3cosmul")
_COSMUL_EPS = 1e-6  # gensim's most_similar_cosmul epsilon, so scores agree with gensim
_ALPHABET = "abcdefghijklmnopqrstuvwxyz-'"


@dataclass(eq=False)
class StaticVectors:
    """A word-vector table. ``vectors`` rows follow ``index_to_key``.

    ``counts`` are corpus frequencies (used by SIF weighting; may be None for imports).
    ``ngrams`` with ``minn``/``maxn``/``bucket`` are fastText subword buckets (None otherwise).
    ``weights`` are optional per-word pooling weights (distilled models); ``name`` is how
    errors refer to the table (the model reference once published).
    ``oov_map`` (dim x dim) and ``oov_norm`` shape the vectors built from n-grams: the n-gram
    mean times ``oov_map``, then scaled to length ``oov_norm`` when it is > 0. fastText tables
    saved as ``unit-sum`` set both (``with_oov_fit``): their rows mix input and output
    vectors, the n-gram mean is an input vector alone, so the map (fitted on the vocabulary)
    puts unknown words in the rows' space, where cosines to known words are comparable, and
    the median row length lets an unpooled mean weigh known and unknown words alike. Unset
    (older tables, ``sum`` and ``input`` ones): fastText's n-gram mean as it is.
    """

    index_to_key: list[str]
    vectors: FloatArray
    counts: np.ndarray | None = None
    ngrams: FloatArray | None = None
    minn: int = 0
    maxn: int = 0
    bucket: int = 0
    weights: np.ndarray | None = None
    name: str = "this model"
    oov_norm: float = 0.0
    oov_map: FloatArray | None = None
    key_to_index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.vectors = np.ascontiguousarray(self.vectors, dtype=np.float32)
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.index_to_key):
            raise FormatError(
                f"vector table has shape {self.vectors.shape} for {len(self.index_to_key)} keys",
                "there must be one row per key",
            )
        self.key_to_index = {k: i for i, k in enumerate(self.index_to_key)}
        if len(self.key_to_index) != len(self.index_to_key):
            raise FormatError("the vocabulary has duplicate keys", "each word may appear once")
        if self.weights is not None and len(self.weights) != len(self.index_to_key):
            raise FormatError(
                f"{len(self.weights)} pooling weights for {len(self.index_to_key)} keys",
                "there must be one weight per key",
            )
        if not (np.isfinite(self.oov_norm) and self.oov_norm >= 0):
            raise FormatError(f"oov_norm must be finite and >= 0, got {self.oov_norm}",
                              "use 0 to keep the n-gram mean's own length")
        if self.oov_map is not None:
            self.oov_map = np.ascontiguousarray(self.oov_map, dtype=np.float32)
            if self.oov_map.shape != (self.dim, self.dim):
                raise FormatError(f"oov_map has shape {self.oov_map.shape}, the vectors have "
                                  f"dim {self.dim}", "it must be a dim x dim matrix")
            self.oov_map.flags.writeable = False
        self.vectors.flags.writeable = False

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return int(self.vectors.shape[1])

    @property
    def has_subwords(self) -> bool:
        """True when OOV words can be built from fastText n-gram buckets."""
        return self.ngrams is not None and self.bucket > 0

    def __len__(self) -> int:
        return len(self.index_to_key)

    def __contains__(self, word: object) -> bool:
        return word in self.key_to_index

    @cached_property
    def norms(self) -> np.ndarray:
        """L2 norm of every row (cached)."""
        return np.linalg.norm(self.vectors, axis=1)

    @cached_property
    def unit_vectors(self) -> FloatArray:
        """Rows scaled to unit length (zero rows stay zero), read-only, cached."""
        norms = self.norms.copy()
        norms[norms == 0] = 1.0
        unit = (self.vectors / norms[:, None]).astype(np.float32)
        unit.flags.writeable = False
        return unit

    @classmethod
    def from_gensim(cls, kv: Any) -> StaticVectors:
        """Build from gensim ``KeyedVectors`` or ``FastTextKeyedVectors``."""
        counts = None
        if "count" in getattr(kv, "expandos", {}):
            counts = np.asarray(kv.expandos["count"], dtype=np.int64)
        ngrams = getattr(kv, "vectors_ngrams", None)
        has_ngrams = ngrams is not None and getattr(kv, "bucket", 0) > 0
        return cls(
            index_to_key=list(kv.index_to_key),
            vectors=np.asarray(kv.vectors, dtype=np.float32),
            counts=counts,
            ngrams=np.asarray(ngrams, dtype=np.float32) if has_ngrams else None,
            minn=int(getattr(kv, "min_n", 0)) if has_ngrams else 0,
            maxn=int(getattr(kv, "max_n", 0)) if has_ngrams else 0,
            bucket=int(getattr(kv, "bucket", 0)) if has_ngrams else 0,
        )

    def with_oov_fit(self, sample: int = 50_000, seed: int = 0) -> StaticVectors:
        """This table with ``oov_map`` fitted (ridge least squares, on up to ``sample`` words)
        from the n-gram means of in-vocabulary words to their rows, and ``oov_norm`` the
        median row length (see the class)."""
        if not self.has_subwords:
            raise InvalidInput(f"{self.name} has no subword n-grams", "use a fastText model")
        rows = np.arange(len(self))
        if len(rows) > sample:
            rows = np.sort(np.random.default_rng(seed).choice(len(rows), sample, replace=False))
        plain = dataclasses.replace(self, oov_map=None, oov_norm=0.0)
        means = np.stack([plain.subword_vector(self.index_to_key[i]) for i in rows])
        x, y = means.astype(np.float64), self.vectors[rows].astype(np.float64)
        gram = x.T @ x
        ridge = 1e-3 * max(float(np.trace(gram)), 1e-12) / self.dim
        mapping = np.linalg.solve(gram + ridge * np.eye(self.dim), x.T @ y)
        return dataclasses.replace(self, oov_map=mapping.astype(np.float32),
                                   oov_norm=float(np.median(self.norms)))

    # -- persistence -----------------------------------------------------------------------
    def write(self, folder: Any) -> None:
        """Write ``vectors.safetensors`` and ``vocab.json`` into ``folder``."""
        tensors: dict[str, np.ndarray] = {"vectors": np.ascontiguousarray(self.vectors)}
        if self.counts is not None:
            tensors["counts"] = np.ascontiguousarray(self.counts, dtype=np.int64)
        if self.ngrams is not None:
            tensors["ngrams"] = np.ascontiguousarray(self.ngrams, dtype=np.float32)
        if self.weights is not None:
            tensors["weights"] = np.ascontiguousarray(self.weights, dtype=np.float32)
        if self.oov_map is not None:
            tensors["oov_map"] = self.oov_map
        meta = {"minn": str(self.minn), "maxn": str(self.maxn), "bucket": str(self.bucket)}
        if self.oov_norm > 0:  # absent in older files, which keep the n-gram mean's length
            meta["oov_norm"] = repr(float(self.oov_norm))
        save_file(tensors, str(folder / VECTORS_FILE), metadata=meta)
        (folder / VOCAB_FILE).write_text(json.dumps(self.index_to_key, ensure_ascii=False))

    @classmethod
    def read(cls, mv: ModelVersion, verify: bool = True) -> StaticVectors:
        """Load the table of a static ModelVersion, checking file checksums first."""
        if mv.kind not in STATIC_KINDS:
            raise InvalidInput(
                f"{mv.ref} is a {mv.kind} model, not a table of word vectors",
                f"use a model of kind {', '.join(STATIC_KINDS)}",
            )
        if verify:
            mv.verify()
        try:
            from safetensors import safe_open

            with safe_open(str(mv.file(VECTORS_FILE)), framework="numpy") as fh:
                meta = fh.metadata() or {}
            tensors = load_file(str(mv.file(VECTORS_FILE)))
            keys = json.loads(mv.file(VOCAB_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise IntegrityError(f"cannot read the vectors of {mv.ref}: {exc}") from exc
        return cls(
            index_to_key=keys,
            vectors=tensors["vectors"],
            counts=tensors.get("counts"),
            ngrams=tensors.get("ngrams"),
            minn=int(meta.get("minn", 0)),
            maxn=int(meta.get("maxn", 0)),
            bucket=int(meta.get("bucket", 0)),
            weights=tensors.get("weights"),
            name=mv.ref,
            oov_norm=float(meta.get("oov_norm", 0.0)),
            oov_map=tensors.get("oov_map"),
        )

    # -- query -----------------------------------------------------------------------------
    def vector(self, word: str) -> FloatArray:
        """The vector of ``word``; built from subword n-grams when OOV in a fastText model.

        Raises OutOfVocabulary (with close spellings) for unknown words without subwords.
        """
        index = self.key_to_index.get(word)
        if index is not None:
            return self.vectors[index]
        if self.has_subwords:
            return self.subword_vector(word)
        raise OutOfVocabulary(word, self.name, self.suggest(word))

    __getitem__ = vector

    def subword_vector(self, word: str) -> FloatArray:
        """Mean of the n-gram bucket vectors of ``word``, hashed exactly as gensim/fastText do,
        times ``oov_map`` and scaled to length ``oov_norm`` when the table sets them.

        A word too short to have any n-gram gets the zero vector (as in fastText).
        """
        if not self.has_subwords:
            raise InvalidInput(f"{self.name} has no subword n-grams", "use a fastText model")
        from gensim.models.fasttext import ft_ngram_hashes

        assert self.ngrams is not None
        hashes = ft_ngram_hashes(word, self.minn, self.maxn, self.bucket)
        if not hashes:
            return np.zeros(self.dim, dtype=np.float32)
        # Summing rows along axis 0 is sequential, like gensim's loop, so the result is bit-equal.
        total = self.ngrams[np.asarray(hashes)].sum(axis=0, dtype=np.float32)
        mean: FloatArray = (total / np.float32(len(hashes))).astype(np.float32)
        if self.oov_map is not None:
            mean = np.asarray(mean @ self.oov_map, dtype=np.float32)
        if self.oov_norm > 0:
            length = float(np.linalg.norm(mean))
            if length > 0:
                mean = np.asarray(mean * np.float32(self.oov_norm / length), dtype=np.float32)
        return mean

    def unit(self, word: str) -> FloatArray:
        """Unit-length vector of ``word`` (cached rows for in-vocabulary words)."""
        index = self.key_to_index.get(word)
        return self.unit_vectors[index] if index is not None else _unit(self.vector(word))

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two words."""
        return float(np.dot(self.unit(a), self.unit(b)))

    def most_similar(
        self,
        word_or_vector: str | np.ndarray,
        k: int = 10,
        exclude: Iterable[str] = (),
        restrict_vocab: int | None = None,
    ) -> list[tuple[str, float]]:
        """The ``k`` nearest words by cosine, best first; a query word is excluded from its
        own results, as are the words in ``exclude``."""
        _check_k(k)
        skip = set(exclude)
        if isinstance(word_or_vector, str):
            query = self.unit(word_or_vector)
            skip.add(word_or_vector)
        else:
            query = _unit(self._as_query(word_or_vector))
        limit = self._limit(restrict_vocab)
        scores = self.unit_vectors[:limit] @ query
        return self._top(scores, k, skip)

    def analogy(
        self, a: str, b: str, c: str, k: int = 1, method: str = "3cosadd"
    ) -> list[tuple[str, float]]:
        """Solve ``a : b :: c : ?`` (e.g. man : king :: woman : queen), excluding a, b and c.

        ``3cosadd`` ranks by cos(x, b) - cos(x, a) + cos(x, c); ``3cosmul`` by Levy and
        Goldberg's multiplicative objective on cosines shifted to [0, 1].
        """
        _check_k(k)
        units = np.stack([self.unit(w) for w in (a, b, c)])
        scores = analogy_scores(self.unit_vectors, units[None], method)[0]
        return self._top(scores, k, {a, b, c})

    def suggest(self, word: str, n: int = 5) -> list[str]:
        """Up to ``n`` close in-vocabulary spellings of ``word``: other casings, then words one
        edit away, then (only if none) two edits away; most frequent (lowest index) first."""
        lower = word.lower()
        found = {w for w in {lower, word.capitalize(), word.upper()} if w in self.key_to_index}
        near = {w for w in _edits1(lower) if w in self.key_to_index} - found
        far: set[str] = set()
        if not found and not near and len(lower) <= 12:
            far = {w for e in _edits1(lower) for w in _edits1(e) if w in self.key_to_index}
        rank = self.key_to_index.__getitem__
        ordered = sorted(found, key=rank) + sorted(near, key=rank)
        ordered += sorted(far - near - found - {word}, key=rank)
        return [w for w in ordered if w != word][:n]

    def _as_query(self, vector: np.ndarray) -> FloatArray:
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        if query.shape[0] != self.dim:
            raise DimensionMismatch(
                f"query vector has dim {query.shape[0]}, {self.name} has dim {self.dim}",
                "query with a vector from the same model",
            )
        if not np.all(np.isfinite(query)) or not np.any(query):
            raise InvalidInput("the query vector is zero or not finite", "pass a real vector")
        return query

    def _limit(self, restrict_vocab: int | None) -> int:
        if restrict_vocab is None:
            return len(self)
        _check_k(restrict_vocab, "restrict_vocab")
        return min(restrict_vocab, len(self))

    def _top(self, scores: np.ndarray, k: int, skip: set[str]) -> list[tuple[str, float]]:
        scores = np.asarray(scores, dtype=np.float32)  # a fresh array: masked in place
        n, masked = len(scores), 0
        for word in skip:
            index = self.key_to_index.get(word)
            if index is not None and index < n:
                scores[index] = -np.inf
                masked += 1
        keep = min(k, n - masked)
        if keep <= 0:
            return []
        top = np.argpartition(scores, n - keep)[n - keep :]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self.index_to_key[i], float(scores[i])) for i in top]


def analogy_scores(unit_vectors: np.ndarray, abc: np.ndarray, method: str) -> FloatArray:
    """Scores of every row of ``unit_vectors`` as the answer to each analogy in ``abc``.

    ``abc`` has shape (batch, 3, dim): unit vectors of a, b, c for ``a : b :: c : ?``.
    Returns (batch, n_rows); the caller masks the input words.
    """
    check_analogy_method(method)
    if method == "3cosadd":
        target = abc[:, 1] - abc[:, 0] + abc[:, 2]
        norms = np.linalg.norm(target, axis=1, keepdims=True)
        target = target / np.where(norms == 0, 1.0, norms)  # scores are cosines, as in gensim
        return np.asarray(target @ unit_vectors.T, dtype=np.float32)
    sims = (1.0 + np.einsum("bjd,nd->bjn", abc, unit_vectors)) / 2.0
    return np.asarray(sims[:, 1] * sims[:, 2] / (sims[:, 0] + _COSMUL_EPS), dtype=np.float32)


def check_analogy_method(method: str) -> str:
    """Return ``method`` if it is ``3cosadd`` or ``3cosmul``, else raise InvalidInput."""
    if method not in ANALOGY_METHODS:
        raise InvalidInput(
            f"unknown analogy method '{method}'", f"use one of {', '.join(ANALOGY_METHODS)}"
        )
    return method


def _unit(vector: np.ndarray) -> FloatArray:
    norm = float(np.linalg.norm(vector))
    return np.asarray(vector / norm if norm else vector, dtype=np.float32)


def _check_k(k: int, name: str = "k") -> None:
    if not isinstance(k, int | np.integer) or k <= 0:
        raise InvalidInput(f"{name} must be a positive integer, got {k}")


def _edits1(word: str) -> set[str]:
    """Strings one deletion, transposition, replacement or insertion away from ``word``."""
    letters = set(_ALPHABET) | set(word)
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    out = {left + right[1:] for left, right in splits if right}
    out |= {left + right[1] + right[0] + right[2:] for left, right in splits if len(right) > 1}
    out |= {left + ch + right[1:] for left, right in splits if right for ch in letters}
    out |= {left + ch + right for left, right in splits for ch in letters}
    return out


def publish_static(
    registry: Registry,
    name: str,
    table: StaticVectors,
    *,
    kind: str,
    spec: TokenizerSpec,
    params: dict[str, Any] | None = None,
    **manifest: Any,
) -> ModelVersion:
    """Publish ``table`` as a new version of ``name`` (atomically; see ``Registry.draft``)."""
    with registry.draft(
        name,
        kind,
        dim=table.dim,
        vocab_size=len(table),
        subwords=table.has_subwords,
        params=params or {},
        tokenizer=spec.to_dict(),
        tokenizer_fingerprint=spec.fingerprint(),
        **manifest,
    ) as draft:
        table.write(draft.path)
    assert draft.published is not None
    return draft.published
