"""Text vectors from static word vectors: tokenize, look up, pool (mean or SIF).

``StaticEncoder`` implements the ``Encoder`` protocol for every static model kind (word2vec,
fasttext, static, distilled). Pooling is set by the manifest's ``pooling`` entry
(``PoolingConfig``):

* ``mean``: the mean of the token vectors, each scaled by the table's per-word ``weights``
  when it has them (distilled models);
* ``sif``: smooth inverse frequency (Arora et al. 2017): weights a / (a + p(w)) from corpus
  counts (or a Zipf estimate from the frequency rank when counts are unknown), then the first
  principal component, fitted once on a sample of texts with ``fit_sif`` and stored in the
  config, is removed from every vector, so documents and queries are transformed alike.

A word-vector model whose manifest has no ``pooling`` entry gets ``WORD_POOLING``.

Tokens missing from the vocabulary are built from subword n-grams in fastText models and
skipped otherwise. A text with no known token gets the zero vector (never NaN), flagged in
``EncodeInfo.empty``; ``EncodeInfo.oov_rate`` is the share of unknown tokens of a batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from embedops.errors import DimensionMismatch, InvalidInput
from embedops.models.registry import ModelVersion
from embedops.models.static import StaticVectors
from embedops.text.tokenize import TokenizerSpec
from embedops.types import FloatArray

POOLING_METHODS = ("mean", "sif")
_SUBWORD_CACHE = 50_000


@dataclass(frozen=True)
class PoolingConfig:
    """How token vectors become a text vector; round-trips ``PoolingConfig(**cfg.to_dict())``.

    ``sif_a`` is SIF's smoothing constant; ``component`` the unit principal component that
    SIF removes (None: not fitted, weights only); ``normalize`` scales outputs to unit length;
    ``unit_tokens`` scales each token vector to unit length before pooling, so that frequent
    words (whose word2vec vectors are long) do not dominate the mean.
    """

    method: str = "mean"
    sif_a: float = 1e-3
    component: tuple[float, ...] | None = None
    normalize: bool = True
    unit_tokens: bool = False

    def __post_init__(self) -> None:
        if self.method not in POOLING_METHODS:
            raise InvalidInput(
                f"unknown pooling method '{self.method}'",
                f"use one of {', '.join(POOLING_METHODS)}",
            )
        if not self.sif_a > 0:
            raise InvalidInput(f"sif_a must be > 0, got {self.sif_a}", "the usual value is 1e-3")
        if self.component is not None:
            object.__setattr__(self, "component", tuple(float(x) for x in self.component))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (stored as the manifest's ``pooling`` entry)."""
        d = dataclasses.asdict(self)
        d["component"] = list(self.component) if self.component is not None else None
        return d


#: Pooling of word-vector models whose manifest names none: SIF weights over unit-length token
#: vectors. On the reverse-dictionary dev queries this beats a plain mean clearly, and ``a``
#: sits mid-plateau (1e-4 to 1e-3 score alike): figures in docs/benchmarks/vectors.md.
WORD_POOLING = PoolingConfig(method="sif", sif_a=3e-4, unit_tokens=True)


@dataclass(frozen=True)
class EncodeInfo:
    """Vectors of a batch plus per-text token counts: ``n_tokens`` after tokenizing, ``n_oov``
    of them not in the vocabulary, ``n_subword`` of those built from subword n-grams."""

    vectors: FloatArray
    n_tokens: np.ndarray
    n_oov: np.ndarray
    n_subword: np.ndarray

    @property
    def empty(self) -> np.ndarray:
        """True where a text had no token with a vector, so its vector is zero."""
        return np.asarray(self.n_tokens - self.n_oov + self.n_subword == 0)

    @property
    def oov_rate(self) -> float:
        """Share of the batch's tokens that are not in the vocabulary (0 for no tokens)."""
        total = int(self.n_tokens.sum())
        return float(self.n_oov.sum()) / total if total else 0.0


class StaticEncoder:
    """The Encoder of a static vector table (see the module docstring)."""

    def __init__(
        self,
        table: StaticVectors,
        spec: TokenizerSpec | None = None,
        version: str = "",
        pooling: PoolingConfig | None = None,
    ) -> None:
        self.table = table
        self.spec = spec or TokenizerSpec()
        self._version = version or table.name
        self.pooling = pooling or WORD_POOLING
        self.last_info: EncodeInfo | None = None
        self._subwords: dict[str, FloatArray] = {}
        if self.pooling.component is not None and len(self.pooling.component) != table.dim:
            raise DimensionMismatch(
                f"the SIF component has dim {len(self.pooling.component)}, "
                f"the vectors have dim {table.dim}",
                "fit the component again with fit_sif on this model",
            )

    @classmethod
    def from_version(cls, mv: ModelVersion, verify: bool = True) -> StaticEncoder:
        """Load a static ModelVersion: its table, tokenizer spec and pooling config."""
        table = StaticVectors.read(mv, verify=verify)
        spec_dict = mv.manifest.get("tokenizer")
        spec = TokenizerSpec(**spec_dict) if spec_dict else TokenizerSpec()
        stored = mv.manifest.get("pooling")
        pooling = PoolingConfig(**stored) if stored else WORD_POOLING
        return cls(table, spec, mv.ref, pooling)

    @property
    def dim(self) -> int:
        """Output dimension."""
        return self.table.dim

    @property
    def version(self) -> str:
        """The model reference ``name@N`` every vector records."""
        return self._version

    @property
    def tokenizer_fingerprint(self) -> str:
        """Fingerprint of the TokenizerSpec texts are split with."""
        return self.spec.fingerprint()

    @property
    def last_oov_rate(self) -> float | None:
        """OOV rate of the most recent ``encode`` call (None before the first)."""
        return self.last_info.oov_rate if self.last_info is not None else None

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> FloatArray:
        """Float32 array (len(texts), dim); zero rows for texts with no known token."""
        return self.encode_with_info(texts, batch_size=batch_size).vectors

    def encode_with_info(self, texts: Sequence[str], *, batch_size: int = 64) -> EncodeInfo:
        """Like ``encode``, with per-text token and OOV counts (kept as ``last_info``)."""
        if isinstance(texts, str):
            raise InvalidInput(
                "encode takes a list of texts, not a single string", "wrap it: [text]"
            )
        if batch_size <= 0:
            raise InvalidInput(f"batch_size must be a positive integer, got {batch_size}")
        parts = [
            self._pool(list(texts[i : i + batch_size])) for i in range(0, len(texts), batch_size)
        ]
        if not parts:
            parts = [self._pool([])]
        info = EncodeInfo(*(np.concatenate([getattr(p, f) for p in parts]) for f in _INFO_FIELDS))
        self.last_info = info
        return info

    def fit_sif(self, texts: Sequence[str], sample: int = 20_000, seed: int = 0) -> StaticEncoder:
        """A SIF encoder whose principal component is fitted on (a sample of) ``texts``."""
        if sample <= 0:
            raise InvalidInput(f"sample must be a positive integer, got {sample}")
        chosen = list(texts)
        if len(chosen) > sample:
            picks = np.random.default_rng(seed).choice(len(chosen), sample, replace=False)
            chosen = [chosen[i] for i in sorted(picks)]
        raw = StaticEncoder(
            self.table,
            self.spec,
            self._version,
            dataclasses.replace(self.pooling, method="sif", component=None, normalize=False),
        )
        matrix = raw.encode(chosen, batch_size=1024)
        matrix = matrix[np.any(matrix != 0, axis=1)]
        if len(matrix) < 2:
            raise InvalidInput(
                "fitting SIF needs at least 2 texts with in-vocabulary words",
                "pass a larger sample of real documents",
            )
        component = np.linalg.svd(matrix.astype(np.float64), full_matrices=False)[2][0]
        component *= np.sign(component[np.argmax(np.abs(component))])  # deterministic sign
        config = dataclasses.replace(
            self.pooling, method="sif", component=tuple(component.tolist())
        )
        return StaticEncoder(self.table, self.spec, self._version, config)

    @cached_property
    def token_weights(self) -> np.ndarray:
        """Per-word pooling weight (float32): SIF's a/(a+p(w)), the table's weights, or 1."""
        table = self.table
        if self.pooling.method == "sif":
            if table.counts is not None and table.counts.sum() > 0:
                prob = table.counts / float(table.counts.sum())
            else:  # Zipf's law from the frequency rank: files are sorted most frequent first
                ranks = np.arange(1, len(table) + 1, dtype=np.float64)
                prob = (1.0 / ranks) / np.sum(1.0 / ranks)
            a = self.pooling.sif_a
            return np.asarray(a / (a + prob), dtype=np.float32)
        if table.weights is not None:
            return np.asarray(table.weights, dtype=np.float32)
        return np.ones(len(table), dtype=np.float32)

    # -- internals -------------------------------------------------------------------------
    def _pool(self, texts: list[str]) -> EncodeInfo:
        n = len(texts)
        n_tokens = np.zeros(n, dtype=np.int64)
        n_oov = np.zeros(n, dtype=np.int64)
        n_sub = np.zeros(n, dtype=np.int64)
        owners: list[int] = []
        rows: list[int] = []
        extra: dict[int, FloatArray] = {}
        lookup = self.table.key_to_index.get
        subwords = self.table.has_subwords
        for i, text in enumerate(texts):
            tokens = self.spec.tokenize(text)
            n_tokens[i] = len(tokens)
            for token in tokens:
                row = lookup(token)
                if row is None:
                    n_oov[i] += 1
                    if not subwords:
                        continue
                    n_sub[i] += 1
                    extra[len(rows)] = self._subword(token)
                    row = -1
                owners.append(i)
                rows.append(row)
        out = self._combine(
            n, np.asarray(owners, dtype=np.int64), np.asarray(rows, dtype=np.int64), extra
        )
        return EncodeInfo(self._finish(out), n_tokens, n_oov, n_sub)

    def _combine(
        self, n: int, owners: np.ndarray, rows: np.ndarray, extra: dict[int, FloatArray]
    ) -> FloatArray:
        """Weighted mean of the gathered token vectors of each text (zero for none)."""
        out = np.zeros((n, self.dim), dtype=np.float32)
        if rows.size == 0:
            return out
        known = rows >= 0
        source = self.table.unit_vectors if self.pooling.unit_tokens else self.table.vectors
        gathered = source[np.where(known, rows, 0)]
        weights = np.where(known, self.token_weights[np.where(known, rows, 0)], np.float32(1.0))
        if extra:
            positions = np.fromiter(extra.keys(), dtype=np.int64, count=len(extra))
            subwords: np.ndarray = np.stack(list(extra.values()))
            if self.pooling.unit_tokens:
                norms = np.linalg.norm(subwords, axis=1, keepdims=True)
                subwords = subwords / np.where(norms > 0, norms, 1.0)
            gathered[positions] = subwords
        gathered *= weights[:, None].astype(np.float32)
        counts = np.bincount(owners, minlength=n)
        filled = counts > 0
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))[filled]
        out[filled] = np.add.reduceat(gathered, starts, axis=0) / counts[filled, None]
        return out

    def _finish(self, pooled: FloatArray) -> FloatArray:
        vectors: np.ndarray = pooled
        if self.pooling.method == "sif" and self.pooling.component is not None:
            u = np.asarray(self.pooling.component, dtype=np.float32)
            vectors = vectors - np.outer(vectors @ u, u)
        if self.pooling.normalize:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.where(norms > 0, norms, 1.0)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _subword(self, token: str) -> FloatArray:
        vector = self._subwords.get(token)
        if vector is None:
            if len(self._subwords) >= _SUBWORD_CACHE:
                self._subwords.clear()
            vector = self._subwords[token] = self.table.subword_vector(token)
        return vector


_INFO_FIELDS = ("vectors", "n_tokens", "n_oov", "n_subword")
