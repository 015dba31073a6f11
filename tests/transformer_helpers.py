"""One MiniLM import (with its ONNX files) and one encoder per backend, shared by a test run.

Importing MiniLM and exporting it to ONNX takes seconds, so transformer tests share one
read-only workspace per process; tests that change files make their own version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from embedops.config import Workspace
from embedops.models.registry import ModelVersion, Registry

_CACHE: dict[str, Any] = {}


def shared_minilm(factory: pytest.TempPathFactory) -> ModelVersion:
    """MiniLM imported once per test process into its own workspace."""
    if "mv" not in _CACHE:
        from embedops.models.transformer import import_transformer

        ws = Workspace(factory.mktemp("minilm-ws")).ensure()
        _CACHE["mv"] = import_transformer(Registry(ws), "minilm")
    return _CACHE["mv"]


def shared_encoder(factory: pytest.TempPathFactory, backend: str) -> Any:
    """A TransformerEncoder of the shared MiniLM version for ``backend``, built once."""
    key = f"enc:{backend}"
    if key not in _CACHE:
        from embedops.models.transformer import TransformerEncoder

        _CACHE[key] = TransformerEncoder.from_version(shared_minilm(factory), backend=backend)
    return _CACHE[key]


def workspace_of(mv: ModelVersion) -> Path:
    """The workspace home that holds ``mv`` (``<home>/models/<name>/<version>``)."""
    return mv.path.parents[2]


def lee_sentences(n: int) -> list[str]:
    """``n`` real English lines of varied length from gensim's Lee corpus."""
    from gensim.test.utils import datapath

    lines = Path(datapath("lee_background.cor")).read_text(encoding="utf-8").splitlines()
    out: list[str] = []
    for line in lines:
        out.extend(s.strip() for s in line.split(". ") if s.strip())
    return out[:n]


def tiny_st_folder(
    dest: Path,
    *,
    pooling: str | tuple[str, ...] = "mean",
    dense: str | None = None,
    prompts: dict[str, str] | None = None,
    default_prompt_name: str | None = None,
    include_prompt: bool = True,
    normalize: bool = True,
    extra: Any = None,
    seed: int = 0,
) -> Path:
    """A small random BERT saved with sentence-transformers into ``dest``, built offline.

    The vocabulary is the Lee corpus' 1,500 most frequent words plus its characters (and their
    ``##`` continuations), so real text tokenizes into words, not [UNK]s. ``dense`` names the
    Dense layer's torch activation (``Tanh``, ``GELU``, ``Identity``...; None: no Dense);
    ``extra`` is one more module appended before Normalize (e.g. a LayerNorm).
    """
    import collections
    import warnings

    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import (
        Dense,
        Normalize,
        Pooling,
        Transformer,
    )
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = " ".join(lee_sentences(4000)).lower().split()
    counts = collections.Counter(w.strip(".,;:\"'()!?") for w in words)
    chars = sorted({c for w in counts for c in w})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *("##" + c for c in chars)]
    vocab += [w for w, _ in counts.most_common(1500) if w]
    ids = {token: i for i, token in enumerate(dict.fromkeys(vocab))}
    hf = dest.parent / (dest.name + "-hf")
    hf.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    # A wide initialisation makes the vectors depend strongly on the tokens (texts and prompts
    # then land far apart), so a cosine bar of 0.999 between two implementations means something.
    config = BertConfig(vocab_size=len(ids), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                        initializer_range=0.5)
    BertModel(config).save_pretrained(hf, safe_serialization=True)
    tokenizer = BertTokenizerFast(vocab=ids, do_lower_case=True)
    assert tokenizer.tokenize("the government")[:2] == ["the", "government"]
    tokenizer.save_pretrained(hf)
    modules: list[Any] = [Transformer(str(hf), max_seq_length=64),
                          Pooling(32, pooling_mode=pooling, include_prompt=include_prompt)]
    width = modules[1].get_embedding_dimension()
    if dense is not None:
        modules.append(Dense(width, 16, activation_function=getattr(torch.nn, dense)()))
    if extra is not None:
        modules.append(extra)
    if normalize:
        modules.append(Normalize())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SentenceTransformer(modules=modules, prompts=prompts,
                                    default_prompt_name=default_prompt_name, device="cpu")
        model.save(str(dest))
    return dest
