"""Static word vectors: a gensim-shaped table (``index_to_key``, ``key_to_index``, ``vectors``,
cached norms, read-only views), optional fastText n-gram buckets for out-of-vocabulary words,
saved as a ModelVersion in safetensors plus a JSON vocabulary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from embedops.errors import FormatError, IntegrityError
from embedops.models.registry import ModelVersion, Registry
from embedops.text.tokenize import TokenizerSpec
from embedops.types import FloatArray

VECTORS_FILE = "vectors.safetensors"
VOCAB_FILE = "vocab.json"
STATIC_KINDS = ("word2vec", "fasttext", "static", "distilled")


@dataclass(eq=False)
class StaticVectors:
    """A word-vector table. ``vectors`` rows follow ``index_to_key``.

    ``counts`` are corpus frequencies (used by SIF weighting; may be None for imports).
    ``ngrams`` with ``minn``/``maxn``/``bucket`` are fastText subword buckets (None otherwise).
    """

    index_to_key: list[str]
    vectors: FloatArray
    counts: np.ndarray | None = None
    ngrams: FloatArray | None = None
    minn: int = 0
    maxn: int = 0
    bucket: int = 0
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
        self.vectors.flags.writeable = False

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def has_subwords(self) -> bool:
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

    # -- persistence -----------------------------------------------------------------------
    def write(self, folder: Any) -> None:
        """Write ``vectors.safetensors`` and ``vocab.json`` into ``folder``."""
        tensors: dict[str, np.ndarray] = {"vectors": np.ascontiguousarray(self.vectors)}
        if self.counts is not None:
            tensors["counts"] = np.ascontiguousarray(self.counts, dtype=np.int64)
        if self.ngrams is not None:
            tensors["ngrams"] = np.ascontiguousarray(self.ngrams, dtype=np.float32)
        meta = {"minn": str(self.minn), "maxn": str(self.maxn), "bucket": str(self.bucket)}
        save_file(tensors, str(folder / VECTORS_FILE), metadata=meta)
        (folder / VOCAB_FILE).write_text(json.dumps(self.index_to_key, ensure_ascii=False))

    @classmethod
    def read(cls, mv: ModelVersion, verify: bool = True) -> StaticVectors:
        """Load the table of a static ModelVersion, checking file checksums first."""
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
        )


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
