"""Transformer sentence encoders (sentence-transformers models), run fully offline.

``import_transformer`` (in ``transformer_import``) publishes a sentence-transformers folder as a
ModelVersion of kind ``transformer``. ``TransformerEncoder`` runs it with one of these backends:

* ``openvino-int8``: the QDQ int8 copy (static, smoothed scales calibrated on real text, so a
  text's vector does not depend on its batch) run by OpenVINO; the default when the version has
  it, it passed its quality gate and the ``openvino`` extra is installed;
* ``onnx-int8``: int8 with activation scales calibrated on real text at import (static, so a
  text's vector does not depend on the batch it is encoded in), run by ONNX Runtime; the
  default when the version has it and it passed its quality gate, without OpenVINO;
* ``onnx``: fused fp32 ONNX, the default otherwise;
* ``torch``: the Hugging Face model in torch (fp32 on CPU, fp16 on CUDA);
* ``sentence-transformers``: the folder run by sentence-transformers itself, for models whose
  modules have no fast path.

The fast backends compute the transformer's hidden states and then run the folder's own
Pooling / Dense / Normalize modules (``st_pipeline.PostPipeline``), so every module type gives
sentence-transformers' vectors. Prompts are applied as sentence-transformers applies them:
``encode`` embeds documents (the model's document prompt, e.g. e5's ``passage: ``),
``encode_queries`` embeds queries (its ``query`` prompt). Nothing is ever fetched from a hub.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embedops.errors import DependencyMissing, InvalidInput
from embedops.models.onnx_backend import FP32_FILE, INT8_FILE, QDQ_FILE, onnx_files
from embedops.models.onnx_batches import Batcher, EncodeInfo, check_texts
from embedops.models.registry import ModelVersion
from embedops.models.st_pipeline import PipelineSpec, PostPipeline, read_pipeline
from embedops.models.transformer_import import (
    KIND,
    MODEL_DIR,
    describe_folder,
    import_transformer,
    minilm_path,
    offline,
    tokenizer_fingerprint,
)
from embedops.progress import progress_bar
from embedops.types import FloatArray

__all__ = [
    "BACKENDS", "DEFAULT_BATCH_SIZE", "KIND", "MODEL_DIR", "PipelineEncoder", "STRunner",
    "TorchRunner", "TransformerEncoder", "describe_folder", "import_transformer",
    "minilm_path", "offline", "pipeline_encoder", "pipeline_spec", "tokenizer_fingerprint",
]

ST_BACKEND = "sentence-transformers"
BACKENDS = ("torch", "onnx", "onnx-int8", "openvino-int8", ST_BACKEND)
#: Backends that run ``workers`` single-threaded batches at once (one per core).
_PARALLEL = ("onnx", "onnx-int8", "openvino-int8")
DEFAULT_BATCH_SIZE = 32


def pipeline_spec(mv: ModelVersion) -> PipelineSpec:
    """The version's recorded pipeline; read from its model folder for versions made before
    pipelines were recorded (or copied without one, as fine-tuning does)."""
    stored = mv.manifest.get("pipeline")
    return PipelineSpec(**stored) if stored else read_pipeline(mv.path / MODEL_DIR)


def int8_is_static(mv: ModelVersion) -> bool:
    """Whether the version's int8 file has calibrated (batch-independent) activation scales."""
    int8 = ((mv.params.get("onnx") or {}).get("int8")) or {}
    return bool(int8.get("activations") == "static" and int8.get("accepted", True))


def qdq_accepted(mv: ModelVersion) -> bool:
    """Whether the version's QDQ int8 file (for OpenVINO) passed its quality gate."""
    qdq = ((mv.params.get("onnx") or {}).get("qdq")) or {}
    return bool(qdq.get("accepted"))


def _cores() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class PipelineEncoder:
    """Tokenize, batch by length, run one backend, apply the pipeline: the encoding core of a
    version folder (``TransformerEncoder`` adds the ModelVersion around it)."""

    def __init__(
        self, root: Path, spec: PipelineSpec, backend: str, threads: int | None = None
    ) -> None:
        self.spec = spec
        self.backend = backend
        self.batcher = Batcher(root / MODEL_DIR / "tokenizer.json", spec.max_seq_length,
                               lowercase=spec.lowercase)
        if threads is not None and threads < 1:
            raise InvalidInput(f"threads must be >= 1, got {threads}")
        # ONNX Runtime and OpenVINO run one batch per core at once (each single-threaded):
        # no barrier between threads at every operator, and padding stays within a batch.
        self.workers = (threads or _cores()) if backend in _PARALLEL else 1
        self._pool: Any = None
        self.runner: Any = _make_runner(root, spec, backend, threads, self.workers)

    def __call__(self, texts: Sequence[str], prompt: str = "") -> FloatArray:
        """Vectors of ``texts`` after ``prompt``."""
        return self.encode_with_info(texts, prompt=prompt)[0]

    def encode_with_info(
        self, texts: Sequence[str], *, batch_size: int = DEFAULT_BATCH_SIZE,
        progress: bool = False, prompt: str = "",
    ) -> tuple[FloatArray, EncodeInfo]:
        """Vectors plus what was truncated, cut or empty; empty texts get the zero vector."""
        items = check_texts(texts)
        encodings, info, positions = self.batcher.tokenize(items, prompt)
        out = np.zeros((len(items), self.spec.dim), dtype=np.float32)
        if self.backend == ST_BACKEND:
            if positions:
                out[positions] = self.runner.encode([items[i] for i in positions], prompt,
                                                    batch_size)
            return out, info
        prompt_length = self.batcher.prompt_length(prompt) if prompt else 0
        batches = self.batcher.batches(encodings, positions, batch_size)
        with progress_bar("encoding", len(items), "texts", quiet=None if progress else True) as bar:
            bar.advance(len(info.empty))
            for rows, vectors in self._run(batches, prompt_length):
                out[rows] = vectors
                bar.advance(len(rows))
        return out, info

    def _run(self, batches: Any, prompt_length: int) -> Any:
        """(positions, vectors) of each batch, ``workers`` batches at a time, in order."""
        def one(batch: Any) -> tuple[np.ndarray, np.ndarray]:
            return batch.positions, self.runner.embed(batch.arrays, prompt_length)

        if self.workers == 1:
            yield from map(one, batches)
            return
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="embedops-encode")
        yield from self._pool.map(one, batches)


def pipeline_encoder(root: Path, spec: PipelineSpec, threads: int | None = None) -> PipelineEncoder:
    """The fp32 fast path of a version folder: ONNX when its file exists, else torch."""
    backend = "onnx" if (root / FP32_FILE).is_file() else "torch"
    return PipelineEncoder(root, spec, backend, threads)


class TransformerEncoder:
    """Encodes texts with a transformer ModelVersion; implements ``embedops.types.Encoder``.

    ``encode`` embeds documents and ``encode_queries`` queries, each with the prompt the model
    gives them (none for models without prompts, where both are the same).
    """

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
        self.spec = pipeline_spec(mv)
        self.backend = _choose_backend(mv, self.spec, backend)
        self.core = PipelineEncoder(mv.path, self.spec, self.backend, threads)
        self.batcher = self.core.batcher
        self.max_seq_length = self.spec.max_seq_length

    @classmethod
    def from_version(
        cls,
        mv: ModelVersion,
        backend: str | None = None,
        threads: int | None = None,
        verify: bool = True,
    ) -> TransformerEncoder:
        """The encoder of ``mv`` after checking its files' checksums (``verify``).

        ``backend`` None picks the fastest batch-invariant one the version has (``onnx-int8``
        when its calibrated file passed the quality gate, else ``onnx``, else ``torch``);
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

    @property
    def prompts(self) -> dict[str, str]:
        """The model's named prompts (non-empty ones only)."""
        return dict(self.spec.prompts)

    @property
    def query_prompt_name(self) -> str | None:
        """The prompt ``encode_queries`` applies (None: none)."""
        return self.spec.query_prompt

    @property
    def document_prompt_name(self) -> str | None:
        """The prompt ``encode`` applies by default (None: none)."""
        return self.spec.document_prompt

    def encode(
        self, texts: Sequence[str], *, batch_size: int = DEFAULT_BATCH_SIZE,
        prompt_name: str | None = None,
    ) -> FloatArray:
        """Float32 document vectors ``(len(texts), dim)``; empty texts get the zero vector.

        ``prompt_name`` picks another of the model's prompts than its document prompt."""
        return self.encode_with_info(texts, batch_size=batch_size, prompt_name=prompt_name)[0]

    def encode_queries(
        self, texts: Sequence[str], *, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> FloatArray:
        """Float32 query vectors: like ``encode`` with the model's query prompt."""
        prompt = self.spec.prompt_text(self.spec.query_prompt)
        return self.core.encode_with_info(texts, batch_size=batch_size, prompt=prompt)[0]

    def encode_with_info(
        self, texts: Sequence[str], *, batch_size: int = DEFAULT_BATCH_SIZE,
        progress: bool = False, prompt_name: str | None = None,
    ) -> tuple[FloatArray, EncodeInfo]:
        """Vectors plus what was truncated, cut or empty (see ``EncodeInfo``); the document
        prompt unless ``prompt_name`` names another."""
        name = prompt_name if prompt_name is not None else self.spec.document_prompt
        return self.core.encode_with_info(
            texts, batch_size=batch_size, progress=progress, prompt=self.spec.prompt_text(name)
        )


def _choose_backend(mv: ModelVersion, spec: PipelineSpec, backend: str | None) -> str:
    if not spec.fast:
        if backend not in (None, ST_BACKEND):
            raise InvalidInput(
                f"{mv.ref} runs only through sentence-transformers ({spec.reason})",
                f"use backend '{ST_BACKEND}' or leave it out",
            )
        return ST_BACKEND
    present = set(onnx_files(mv.path))
    available = {"torch", ST_BACKEND, *(b for b, f in (
        ("onnx", FP32_FILE), ("onnx-int8", INT8_FILE), ("openvino-int8", QDQ_FILE))
        if f in present)}
    if backend is None:
        import importlib.util

        if (importlib.util.find_spec("openvino") is not None and "openvino-int8" in available
                and qdq_accepted(mv)):
            return "openvino-int8"
        if importlib.util.find_spec("onnxruntime") is None:
            return "torch"
        if "onnx-int8" in available and int8_is_static(mv):
            return "onnx-int8"
        return "onnx" if "onnx" in available else "torch"
    if backend not in BACKENDS:
        raise InvalidInput(f"unknown backend '{backend}'", f"use one of {', '.join(BACKENDS)}")
    if backend not in available:
        raise InvalidInput(
            f"{mv.ref} has no files for backend '{backend}' (it has: {sorted(available)})",
            "import it again with ONNX export enabled, or use backend 'torch'",
        )
    return backend


class _Pipelined:
    """Hidden states from a runner, then the folder's pooling / dense / normalize steps."""

    def __init__(self, hidden: Any, post: PostPipeline) -> None:
        self.hidden = hidden
        self.post = post

    def embed(self, arrays: dict[str, np.ndarray], prompt_length: int = 0) -> np.ndarray:
        return self.post(self.hidden.run(arrays), arrays["attention_mask"], prompt_length)


def _make_runner(
    root: Path, spec: PipelineSpec, backend: str, threads: int | None, workers: int = 1
) -> Any:
    if backend == ST_BACKEND:
        return STRunner(root / MODEL_DIR, spec, threads)
    post = PostPipeline(spec, root / MODEL_DIR)
    if backend == "openvino-int8":
        from embedops.models.openvino_backend import OpenVinoRunner

        return _Pipelined(OpenVinoRunner(root / QDQ_FILE, workers), post)
    if backend in ("onnx", "onnx-int8"):
        from embedops.models.onnx_backend import OnnxRunner

        return _Pipelined(OnnxRunner(root / (FP32_FILE if backend == "onnx" else INT8_FILE),
                                     1 if workers > 1 else threads), post)
    return _Pipelined(TorchRunner(root / MODEL_DIR, threads), post)


def _torch(threads: int | None) -> Any:
    try:
        import torch
    except ImportError as exc:
        raise DependencyMissing("torch", "the torch transformer backends") from exc
    if threads is not None:
        torch.set_num_threads(threads)
    return torch


class TorchRunner:
    """The Hugging Face model in torch: fp32 on CPU, fp16 on CUDA where a GPU exists."""

    def __init__(self, model_dir: Path, threads: int | None = None, device: str | None = None):
        offline()
        torch = self.torch = _torch(threads)
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        model = AutoModel.from_pretrained(str(model_dir)).eval().to(self.device)
        # fp16 halves memory traffic on a GPU; on CPU half precision is slower, so keep fp32.
        self.model = model.half() if self.device.startswith("cuda") else model
        self.accepted = set(inspect.signature(model.forward).parameters)

    def run(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Hidden states ``(batch, seq, dim)`` (float32) of one padded batch."""
        torch = self.torch
        feed = {
            k: torch.from_numpy(v).to(self.device) for k, v in arrays.items() if k in self.accepted
        }
        with torch.inference_mode():
            hidden = self.model(**feed).last_hidden_state.float()
        return np.asarray(hidden.cpu().numpy(), dtype=np.float32)


class STRunner:
    """The whole folder run by sentence-transformers (models without a fast path)."""

    def __init__(self, model_dir: Path, spec: PipelineSpec, threads: int | None = None) -> None:
        offline()
        _torch(threads)
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise DependencyMissing("sentence-transformers", "this transformer model") from exc
        self.model = SentenceTransformer(str(model_dir), device=None, local_files_only=True)
        self.spec = spec

    def encode(self, texts: list[str], prompt: str = "", batch_size: int = 32) -> np.ndarray:
        """float32 vectors of ``texts`` after ``prompt`` (as ``SentenceTransformer.encode``)."""
        vectors = self.model.encode(texts, prompt=prompt, batch_size=batch_size,
                                    convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)
