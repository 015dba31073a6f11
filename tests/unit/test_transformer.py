"""TransformerEncoder on the real all-MiniLM-L6-v2, loaded offline from its PyPI package."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from embedops.errors import IntegrityError, InvalidInput
from embedops.models.loader import load_encoder
from embedops.models.openvino_backend import openvino_available
from embedops.models.registry import Registry
from embedops.models.transformer import (
    TransformerEncoder,
    describe_folder,
    import_transformer,
    minilm_path,
    tokenizer_fingerprint,
)
from embedops.types import Encoder
from transformer_helpers import lee_sentences, shared_encoder, shared_minilm, tiny_st_folder

pytestmark = pytest.mark.transformer


@pytest.fixture(scope="session")
def minilm(tmp_path_factory: pytest.TempPathFactory):
    return shared_minilm(tmp_path_factory)


@pytest.fixture(scope="session")
def torch_enc(tmp_path_factory: pytest.TempPathFactory):
    return shared_encoder(tmp_path_factory, "torch")


@pytest.fixture(scope="session")
def sentences() -> list[str]:
    return lee_sentences(48)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small random BERT saved with sentence-transformers (quick to import)."""
    return tiny_st_folder(tmp_path_factory.mktemp("tiny") / "tiny")


def _small_copy(tmp_path: Path) -> Path:
    """The MiniLM folder without its weights (enough for describe_folder and fingerprints)."""
    dest = tmp_path / "st"
    shutil.copytree(minilm_path(), dest, ignore=shutil.ignore_patterns("*.safetensors"))
    return dest


def test_minilm_folder_is_described() -> None:
    desc = describe_folder(minilm_path())
    assert (desc["dim"], desc["max_seq_length"], desc["pooling"]) == (384, 256, "mean")
    assert desc["normalize"] is True


def test_import_writes_a_self_contained_checksummed_version(minilm) -> None:
    m = minilm.manifest
    assert (minilm.kind, minilm.dim, m["max_seq_length"], m["pooling"]) == (
        "transformer", 384, 256, "mean",
    )
    assert len(minilm.tokenizer_fingerprint) == 16
    assert m["tokenizer"]["lowercase"] is True and m["tokenizer"]["vocab_size"] == 30522
    assert {"model/model.safetensors", "onnx/model.onnx", "onnx/model_int8.onnx"} <= set(m["files"])
    assert m["params"]["onnx"]["fused"] is True
    int8 = m["params"]["onnx"]["int8"]
    assert int8["activations"] == "static" and int8["accepted"] is True
    assert int8["gate"]["mean_cosine"] >= 0.995 and int8["frozen"] == 24
    assert int8["gate"]["batch_min_cosine"] >= 0.999
    assert int8["gate"]["recall@10"] >= int8["gate"]["recall@10_fp32"] - 0.01
    qdq = m["params"]["onnx"]["qdq"]
    if openvino_available():
        assert qdq["accepted"] is True and qdq["quantized"] == 24 and "onnx/model_qdq.onnx" in (
            m["files"])
        assert qdq["gate"]["mean_cosine"] >= 0.995 and qdq["gate"]["batch_min_cosine"] >= 0.999
    else:
        assert qdq == {"accepted": False, "reason": "the openvino package is not installed"}
    assert m["params"]["parity"]["min_cosine"] >= 0.999
    assert [s["type"] for s in m["pipeline"]["steps"]] == ["pooling", "normalize"]
    assert m["pipeline"]["prompts"] == {} and m["pipeline"]["fast"] is True
    minilm.verify()


def test_encoder_protocol_and_loader(minilm, torch_enc) -> None:
    assert isinstance(torch_enc, Encoder)
    assert torch_enc.dim == 384 and torch_enc.version == minilm.ref
    assert torch_enc.tokenizer_fingerprint == minilm.tokenizer_fingerprint
    loaded = load_encoder(minilm)
    default = "openvino-int8" if openvino_available() else "onnx-int8"
    assert isinstance(loaded, TransformerEncoder) and loaded.backend == default
    assert loaded.prompts == {} and loaded.query_prompt_name is None
    np.testing.assert_array_equal(loaded.encode_queries(["a cat"]), loaded.encode(["a cat"]))


def test_torch_backend_matches_sentence_transformers(torch_enc, sentences) -> None:
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(minilm_path()), device="cpu").encode(
        sentences, batch_size=16, normalize_embeddings=True
    )
    ours = torch_enc.encode(sentences)
    assert ours.dtype == np.float32 and ours.shape == (len(sentences), 384)
    assert np.min(np.sum(ours * reference, axis=1)) > 0.9999


def test_onnx_backends_agree_with_torch(tmp_path_factory, torch_enc, sentences) -> None:
    reference = torch_enc.encode(sentences)
    fp32 = shared_encoder(tmp_path_factory, "onnx").encode(sentences)
    int8 = shared_encoder(tmp_path_factory, "onnx-int8").encode(sentences)
    assert np.min(np.sum(fp32 * reference, axis=1)) > 0.9999
    cos8 = np.sum(int8 * reference, axis=1)
    assert cos8.mean() > 0.995 and cos8.min() > 0.98


def test_length_bucketing_restores_input_order(tmp_path_factory, sentences) -> None:
    enc = shared_encoder(tmp_path_factory, "onnx")
    perm = np.random.default_rng(0).permutation(len(sentences))
    direct = enc.encode(sentences, batch_size=5)
    shuffled = enc.encode([sentences[i] for i in perm], batch_size=7)
    one_by_one = enc.encode(sentences[:6], batch_size=1)
    np.testing.assert_allclose(shuffled, direct[perm], atol=1e-5)
    np.testing.assert_allclose(one_by_one, direct[:6], atol=1e-5)


def test_empty_texts_get_zero_vectors_and_are_flagged(tmp_path_factory) -> None:
    enc = shared_encoder(tmp_path_factory, "onnx")
    vectors, info = enc.encode_with_info(["a red apple", "", "   \n", "pears"])
    assert info.empty == (1, 2) and info.truncated == 0
    assert not vectors[1:3].any()
    np.testing.assert_allclose(np.linalg.norm(vectors[[0, 3]], axis=1), 1.0, atol=1e-5)
    assert enc.encode([]).shape == (0, 384)


@pytest.mark.parametrize(
    ("texts", "position"), [(["ok", None], 1), ([3, "ok"], 0), (["a", "b", b"c"], 2)]
)
def test_non_string_items_name_their_position(tmp_path_factory, texts, position) -> None:
    enc = shared_encoder(tmp_path_factory, "onnx")
    with pytest.raises(InvalidInput, match=f"position {position}"):
        enc.encode(texts)


def test_a_bare_string_is_refused(tmp_path_factory) -> None:
    with pytest.raises(InvalidInput, match="list of texts"):
        shared_encoder(tmp_path_factory, "onnx").encode("just one string")


def test_truncation_is_counted_and_megabyte_strings_are_cut(tmp_path_factory) -> None:
    enc = shared_encoder(tmp_path_factory, "onnx")
    long_text = "the river runs to the sea " * 200
    huge = "word " * 220_000  # 1.1 MB
    vectors, info = enc.encode_with_info(["short", long_text, huge])
    assert (info.truncated, info.cut_chars, info.empty) == (2, 1, ())
    assert np.isfinite(vectors).all()
    # Truncated to the same first 256 tokens, so the long text and its prefix agree.
    prefix = enc.encode([" ".join(long_text.split()[:300])])
    assert float(vectors[1] @ prefix[0]) > 0.9999


def test_unknown_or_missing_backend_is_refused(minilm, tiny, registry: Registry) -> None:
    with pytest.raises(InvalidInput, match="unknown backend"):
        TransformerEncoder.from_version(minilm, backend="tensorrt")
    bare = import_transformer(registry, str(tiny), "bare", onnx=False)
    assert not any(f.startswith("onnx/") for f in bare.manifest["files"])
    assert bare.manifest["params"]["parity"]["backend"] == "torch"
    with pytest.raises(InvalidInput, match="no files for backend 'onnx-int8'"):
        TransformerEncoder.from_version(bare, backend="onnx-int8")
    enc = TransformerEncoder.from_version(bare, threads=1)
    assert enc.backend == "torch" and enc.encode(["a cat"]).shape == (1, 32)
    with pytest.raises(InvalidInput, match="threads"):
        TransformerEncoder.from_version(bare, backend="torch", threads=0)


def test_a_tampered_version_is_refused(tiny, registry: Registry) -> None:
    copy = import_transformer(registry, str(tiny), "tamper", onnx=False)
    with open(copy.path / "model" / "tokenizer.json", "a") as fh:
        fh.write("\n")
    with pytest.raises(IntegrityError, match="failed verification"):
        TransformerEncoder.from_version(copy)


def test_fingerprint_follows_tokenizer_files(tmp_path: Path) -> None:
    folder = _small_copy(tmp_path)
    before = tokenizer_fingerprint(folder, 256)
    assert before == tokenizer_fingerprint(minilm_path(), 256)
    assert before != tokenizer_fingerprint(folder, 128)
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    cfg["do_lower_case"] = False
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))
    assert tokenizer_fingerprint(folder, 256) != before


def test_unsupported_folders_are_refused_clearly(tmp_path: Path, registry: Registry) -> None:
    with pytest.raises(InvalidInput, match="neither 'minilm' nor a folder"):
        import_transformer(registry, str(tmp_path / "nope"))
    with pytest.raises(InvalidInput, match="allow_download=True"):
        import_transformer(registry, "intfloat/e5-small-v2")
    with pytest.raises(InvalidInput, match="no modules.json"):
        describe_folder(tmp_path)
    folder = _small_copy(tmp_path)
    modules = json.loads((folder / "modules.json").read_text())
    (folder / "modules.json").write_text(json.dumps(modules[1:]))
    with pytest.raises(InvalidInput, match="a Transformer at the folder's root"):
        describe_folder(folder)
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(InvalidInput, match="no safetensors weights"):
        import_transformer(registry, str(folder))
    (folder / "tokenizer.json").unlink()
    with pytest.raises(InvalidInput, match="no tokenizer.json"):
        describe_folder(folder)


def test_folder_import_skips_pickles_and_foreign_exports(tiny, tmp_path: Path, registry) -> None:
    folder = tmp_path / "my-model"
    shutil.copytree(tiny, folder)
    (folder / "pytorch_model.bin").write_bytes(b"pickle bytes")
    (folder / "onnx").mkdir()
    (folder / "onnx" / "model.onnx").write_bytes(b"someone else's export")
    mv = import_transformer(registry, str(folder), onnx=False)
    assert mv.ref == "my-model@1"
    files = set(mv.manifest["files"])
    assert "model/model.safetensors" in files and "model/1_Pooling/config.json" in files
    assert not any(f.endswith(".bin") or f.startswith(("onnx/", "model/onnx/")) for f in files)
