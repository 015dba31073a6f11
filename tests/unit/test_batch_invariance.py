"""The default transformer backend gives a text the same vector whatever batch it is in.

Dynamic int8 quantization measures activation ranges per batch, so the same text changed
vector with its neighbours (cosine down to 0.97 on MiniLM); the default must keep every text
within cosine 0.999 of itself encoded alone.
"""

from __future__ import annotations

import numpy as np
import pytest

from embedops.models.transformer import TransformerEncoder
from transformer_helpers import lee_sentences, shared_minilm

pytestmark = pytest.mark.transformer

MIN_COSINE = 0.999


def _in_company(enc: TransformerEncoder, probe: list[str], others: list[str], batch_size: int,
                seed: int) -> np.ndarray:
    """Vectors of ``probe`` encoded shuffled among ``others`` in batches of ``batch_size``."""
    texts = probe + others
    order = np.random.default_rng(seed).permutation(len(texts))
    vectors = enc.encode([texts[i] for i in order], batch_size=batch_size)
    return vectors[np.argsort(order)][: len(probe)]


def test_default_backend_vectors_do_not_depend_on_the_batch(tmp_path_factory) -> None:
    enc = TransformerEncoder.from_version(shared_minilm(tmp_path_factory), verify=False)
    texts = lee_sentences(360)
    probe, pool = texts[:32], texts[32:]
    alone = np.vstack([enc.encode([t]) for t in probe])
    in_32 = _in_company(enc, probe, pool[:96], 32, seed=1)
    in_256 = _in_company(enc, probe, pool[96:320], 256, seed=2)
    worst = {
        "alone vs batch 32": float(np.min(np.sum(alone * in_32, axis=1))),
        "alone vs batch 256": float(np.min(np.sum(alone * in_256, axis=1))),
        "batch 32 vs batch 256": float(np.min(np.sum(in_32 * in_256, axis=1))),
    }
    assert min(worst.values()) >= MIN_COSINE, (enc.backend, worst)


def test_a_pair_and_a_single_text_agree(tmp_path_factory) -> None:
    enc = TransformerEncoder.from_version(shared_minilm(tmp_path_factory), verify=False)
    a = "The bushfires around Sydney were the worst in decades."
    b = "A short one."
    assert float(enc.encode([a])[0] @ enc.encode([a, b])[0]) >= MIN_COSINE
