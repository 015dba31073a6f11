"""Any sentence-transformers folder imports and embeds as sentence-transformers embeds it.

Small random BERT models are built offline inside the tests and saved with
sentence-transformers: a Dense layer, e5-style query/passage prompts, last-token pooling,
several pooling modes with the prompt left out of pooling, and a module with no fast path.
Each is imported with ``import_transformer`` and compared with
``SentenceTransformer(folder).encode(..., prompt_name=...)`` on 200 real sentences.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from embedops.config import Workspace
from embedops.errors import InvalidInput
from embedops.models.openvino_backend import openvino_available
from embedops.models.registry import ModelVersion, Registry
from embedops.models.transformer import TransformerEncoder, import_transformer
from transformer_helpers import lee_sentences, tiny_st_folder

pytestmark = pytest.mark.transformer

E5_PROMPTS = {"query": "query: ", "passage": "passage: "}
MODELS: dict[str, dict[str, Any]] = {
    "dense": {"dense": "Tanh"},
    "e5": {"prompts": E5_PROMPTS},
    "lasttoken": {"pooling": "lasttoken", "dense": "GELU"},
}


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return lee_sentences(200)


@pytest.fixture(scope="module")
def registry_m(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    return Registry(Workspace(tmp_path_factory.mktemp("any-st-ws")).ensure())


@pytest.fixture(scope="module")
def imported(tmp_path_factory, registry_m) -> dict[str, tuple[Path, ModelVersion]]:
    """Each model of MODELS saved with sentence-transformers, then imported (with ONNX)."""
    out = {}
    for name, options in MODELS.items():
        folder = tiny_st_folder(tmp_path_factory.mktemp(name) / name, **options)
        out[name] = (folder, import_transformer(registry_m, str(folder)))
    return out


def _st(folder: Path) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device="cpu")


def _min_cos(a: np.ndarray, b: np.ndarray) -> float:
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.min(np.sum(a * b, axis=1) / np.maximum(norms, 1e-12)))


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_fast_backends_match_sentence_transformers(imported, texts, name, backend) -> None:
    folder, mv = imported[name]
    enc = TransformerEncoder.from_version(mv, backend=backend)
    reference = _st(folder)
    doc_prompt = "passage" if name == "e5" else None
    docs = reference.encode(texts, prompt_name=doc_prompt)
    assert enc.dim == docs.shape[1] == (32 if name == "e5" else 16)
    assert _min_cos(enc.encode(texts), docs) >= 0.999
    queries = reference.encode(texts, prompt_name="query" if name == "e5" else None)
    assert _min_cos(enc.encode_queries(texts), queries) >= 0.999


def test_prompts_are_applied_recorded_and_fingerprinted(imported, texts, tmp_path) -> None:
    folder, mv = imported["e5"]
    pipeline = mv.manifest["pipeline"]
    assert pipeline["prompts"] == E5_PROMPTS
    assert (pipeline["query_prompt"], pipeline["document_prompt"]) == ("query", "passage")
    assert mv.manifest["tokenizer"]["prompts"] == E5_PROMPTS
    enc = TransformerEncoder.from_version(mv, backend="onnx")
    assert (enc.query_prompt_name, enc.document_prompt_name) == ("query", "passage")
    queries, docs = enc.encode_queries(texts[:20]), enc.encode(texts[:20])
    assert _min_cos(queries, docs) < 0.99  # the prompt changes the vectors
    bare = enc.encode(texts[:20], prompt_name="query")
    np.testing.assert_allclose(bare, queries, atol=1e-5)
    with pytest.raises(InvalidInput, match="unknown prompt name 'instruct'"):
        enc.encode(texts[:2], prompt_name="instruct")
    same_weights = tiny_st_folder(tmp_path / "no-prompts")
    reg = Registry(Workspace(tmp_path / "ws").ensure())
    plain = import_transformer(reg, str(same_weights), onnx=False)
    assert plain.tokenizer_fingerprint != mv.tokenizer_fingerprint
    assert plain.manifest["pipeline"]["prompts"] == {}


def test_default_backend_is_an_int8_copy_within_the_gate(imported, texts) -> None:
    folder, mv = imported["dense"]
    onnx = mv.manifest["params"]["onnx"]
    enc = TransformerEncoder.from_version(mv)
    if onnx["qdq"]["accepted"] and openvino_available():
        assert enc.backend == "openvino-int8"
    else:
        assert enc.backend == ("onnx-int8" if onnx["int8"]["accepted"] else "onnx")
    cos = np.sum(enc.encode(texts) * _st(folder).encode(texts), axis=1)
    assert cos.mean() >= 0.99


def test_pooling_modes_with_the_prompt_left_out(tmp_path, registry, texts) -> None:
    folder = tiny_st_folder(
        tmp_path / "modes", pooling=("cls", "max", "mean_sqrt_len_tokens", "weightedmean"),
        prompts={"query": "search for the following query: "}, include_prompt=False,
        normalize=False, dense="Identity",
    )
    mv = import_transformer(registry, str(folder), onnx=False)
    assert mv.manifest["pooling"] == "cls+max+mean_sqrt_len_tokens+weightedmean"
    enc = TransformerEncoder.from_version(mv)
    assert enc.backend == "torch"
    reference = _st(folder)
    sample = texts[:60]
    assert _min_cos(enc.encode_queries(sample),
                    reference.encode(sample, prompt_name="query")) >= 0.999
    ours = enc.encode(sample)
    theirs = reference.encode(sample)
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-4)  # not normalized


def test_a_module_without_fast_path_runs_through_sentence_transformers(
    tmp_path, registry, texts
) -> None:
    from sentence_transformers.sentence_transformer.modules import LayerNorm

    folder = tiny_st_folder(tmp_path / "layernorm", extra=LayerNorm(32))
    mv = import_transformer(registry, str(folder))
    pipeline = mv.manifest["pipeline"]
    assert pipeline["fast"] is False and "LayerNorm" in pipeline["reason"]
    assert not any(f.startswith("onnx/") for f in mv.manifest["files"])
    enc = TransformerEncoder.from_version(mv)
    assert enc.backend == "sentence-transformers"
    vectors, info = enc.encode_with_info([*texts[:40], ""])
    assert info.empty == (40,) and not vectors[40].any()
    assert _min_cos(vectors[:40], _st(folder).encode(texts[:40])) >= 0.999
    with pytest.raises(InvalidInput, match="runs only through sentence-transformers"):
        TransformerEncoder.from_version(mv, backend="onnx")


def test_the_engine_embeds_queries_with_the_query_prompt(imported, texts, tmp_path) -> None:
    from embedops.engine import Embedops

    folder, _ = imported["e5"]
    with Embedops(home=tmp_path / "ws") as eo:
        ref = eo.models.import_transformer(str(folder)).ref
        eo.collections.create("docs", ref)
        eo.upsert_items("docs", [{"id": str(i), "text": t} for i, t in enumerate(texts[:30])])
        enc = TransformerEncoder.from_version(eo.models.resolve(ref))
        queries = eo.models.encode_queries(texts[:5], ref)
        assert _min_cos(queries, enc.encode_queries(texts[:5])) >= 0.9999
        assert _min_cos(queries, eo.embed(texts[:5], ref)) < 0.99  # documents: passage prompt
        _, stored = eo.load_vectors("docs", ref, ["0"])
        assert _min_cos(stored, enc.encode(texts[:1])) >= 0.9999
        assert eo.search("docs", texts[3], k=3).hits
