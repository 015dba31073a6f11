"""The modules of a sentence-transformers folder after its Transformer, run in numpy.

``read_pipeline`` reads a folder's ``modules.json`` and module configs (both the legacy
``pooling_mode_*_tokens`` keys and sentence-transformers 6's ``pooling_mode``) into a JSON-ready
``PipelineSpec``: the Transformer's token limit and casing, then Pooling (cls, max, mean,
mean_sqrt_len_tokens, weightedmean, lasttoken, several concatenated; ``include_prompt``),
Dense (any of the usual activations, residual) and Normalize steps, and the folder's prompts.
``PostPipeline`` applies those steps to the transformer's hidden states exactly as the
sentence-transformers modules do. A folder with any other module (LSTM, CNN, Router, a static
embedding, a multimodal processor...) is described with ``fast=False`` and a reason, so the
encoder hands the whole folder to sentence-transformers instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedops.errors import InvalidInput

POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
#: Legacy boolean keys, in the order sentence-transformers concatenates their outputs.
_LEGACY_POOLING = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
#: torch activation class names -> the numpy function used for them.
ACTIVATIONS = ("identity", "tanh", "relu", "gelu", "gelu_tanh", "sigmoid", "silu")
_TORCH_ACTIVATIONS = {
    "Identity": "identity", "Tanh": "tanh", "ReLU": "relu", "GELU": "gelu",
    "Sigmoid": "sigmoid", "SiLU": "silu",
}
#: The prompt names sentence-transformers' ``encode_document`` tries, in its order.
DOCUMENT_PROMPTS = ("document", "passage", "corpus")
_FAST_TASKS = (None, "feature-extraction")


@dataclass(frozen=True)
class PipelineSpec:
    """What a sentence-transformers folder computes, as JSON-ready fields.

    ``steps``: the modules after the Transformer (dicts with a ``type``); ``prompts``: the
    non-empty named prompts; ``query_prompt`` / ``document_prompt``: the prompt names applied to
    queries and to documents (None: no prompt); ``fast``: whether ``PostPipeline`` can run it
    (else ``reason`` says why and only sentence-transformers itself can).
    """

    dim: int
    max_seq_length: int
    lowercase: bool = False
    steps: tuple[dict[str, Any], ...] = ()
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    query_prompt: str | None = None
    document_prompt: str | None = None
    fast: bool = True
    reason: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(dict(s) for s in self.steps))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``PipelineSpec(**d)`` rebuilds it."""
        return {
            "dim": self.dim, "max_seq_length": self.max_seq_length, "lowercase": self.lowercase,
            "steps": [dict(s) for s in self.steps], "prompts": dict(self.prompts),
            "default_prompt_name": self.default_prompt_name, "query_prompt": self.query_prompt,
            "document_prompt": self.document_prompt, "fast": self.fast, "reason": self.reason,
        }

    @property
    def pooling(self) -> str:
        """The pooling mode(s), ``+``-joined (``mean``, ``cls+max``); ``none`` if no Pooling."""
        modes = [m for s in self.steps if s["type"] == "pooling" for m in s["modes"]]
        return "+".join(modes) or "none"

    @property
    def normalize(self) -> bool:
        """Whether the last step is a Normalize of the sentence embedding."""
        return bool(self.steps) and self.steps[-1]["type"] == "normalize"

    def prompt_text(self, name: str | None) -> str:
        """The text of prompt ``name`` ('' for None); an unknown name is refused."""
        if name is None:
            return ""
        if name not in self.prompts:
            known = ", ".join(sorted(self.prompts)) or "none"
            raise InvalidInput(f"unknown prompt name '{name}'", f"this model's prompts: {known}")
        return self.prompts[name]


def read_json(path: Path) -> Any:
    """The JSON in ``path`` ({} if the file is absent); a broken file is refused."""
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(
            f"cannot read {path}: {exc}", "is this a sentence-transformers folder?"
        ) from exc


def _class_name(type_path: str) -> str:
    return type_path.rsplit(".", 1)[-1]


def _pooling_step(cfg: dict[str, Any]) -> dict[str, Any]:
    mode = cfg.get("pooling_mode")
    if mode is None:
        modes = [m for key, m in _LEGACY_POOLING.items() if cfg.get(key)] or ["mean"]
    else:
        modes = [mode] if isinstance(mode, str) else list(mode)
    unknown = [m for m in modes if m not in POOLING_MODES]
    if unknown:
        raise InvalidInput(f"unknown pooling mode(s) {unknown}", f"known: {POOLING_MODES}")
    dim = int(cfg.get("embedding_dimension", cfg.get("word_embedding_dimension", 0)))
    return {"type": "pooling", "modes": modes, "include_prompt": bool(
        cfg.get("include_prompt", True)), "in_dim": dim, "out_dim": dim * len(modes)}


def _dense_step(cfg: dict[str, Any], path: str) -> dict[str, Any]:
    name = _class_name(str(cfg.get("activation_function", "torch.nn.modules.activation.Tanh")))
    activation = _TORCH_ACTIVATIONS.get(name, name)
    return {
        "type": "dense", "path": path, "in_dim": int(cfg["in_features"]),
        "out_dim": int(cfg["out_features"]), "bias": bool(cfg.get("bias", True)),
        "activation": activation, "residual": bool(cfg.get("use_residual", False)),
        "input": cfg.get("module_input_name", "sentence_embedding"),
        "output": cfg.get("module_output_name") or cfg.get("module_input_name",
                                                           "sentence_embedding"),
    }


def _normalize_step(cfg: dict[str, Any]) -> dict[str, Any]:
    source = cfg.get("module_input_name", "sentence_embedding")
    return {"type": "normalize", "input": source,
            "output": cfg.get("module_output_name") or source}


def _max_seq_length(folder: Path, st_cfg: dict[str, Any]) -> int:
    """The token limit sentence-transformers applies (sentence_bert_config, else the
    tokenizer's ``model_max_length`` capped by the model's position embeddings)."""
    config = read_json(folder / "config.json")
    positions = int(config.get("max_position_embeddings", 512))
    if st_cfg.get("max_seq_length") is not None:
        return min(int(st_cfg["max_seq_length"]), positions if positions > 0 else 1 << 30)
    tok_limit = read_json(folder / "tokenizer_config.json").get("model_max_length")
    limit = int(tok_limit) if tok_limit is not None and float(tok_limit) < 1e9 else positions
    return min(limit, positions) if positions > 0 else limit


def _resolve_prompts(folder: Path) -> tuple[dict[str, str], str | None, str | None, str | None]:
    """Non-empty prompts, default name, and the names used for queries and for documents.

    sentence-transformers saves empty ``query`` and ``document`` prompts in every folder, so
    only non-empty ones count: documents get the first of ``document``, ``passage``, ``corpus``
    (e5's ``passage: ``), queries ``query``; either side falls back to the default prompt."""
    cfg = read_json(folder / "config_sentence_transformers.json")
    prompts = {str(k): str(v) for k, v in (cfg.get("prompts") or {}).items() if v}
    default = cfg.get("default_prompt_name")
    default = default if default in prompts else None
    query = "query" if "query" in prompts else default
    document = next((n for n in DOCUMENT_PROMPTS if n in prompts), default)
    return prompts, default, query, document


def _unsupported(steps: list[dict[str, Any]], st_cfg: dict[str, Any]) -> str:
    for step in steps:
        if step["type"] not in ("pooling", "dense", "normalize"):
            return f"module {step['type']} has no fast path"
        if step["type"] == "dense" and step["activation"] not in ACTIVATIONS:
            return f"Dense activation {step['activation']} has no fast path"
    if st_cfg.get("transformer_task") not in _FAST_TASKS:
        return f"transformer_task {st_cfg['transformer_task']} has no fast path"
    if st_cfg.get("processing_kwargs") or st_cfg.get("query_length") or st_cfg.get(
            "document_length"):
        return "per-task processing settings have no fast path"
    modality = st_cfg.get("modality_config")
    if modality and set(modality) != {"text"}:
        return f"modalities {sorted(modality)} have no fast path"
    if not any(s["type"] == "pooling" for s in steps):
        return "no Pooling module: token embeddings only"
    return ""


def read_pipeline(folder: Path) -> PipelineSpec:
    """The ``PipelineSpec`` of a sentence-transformers folder (see the module docstring)."""
    modules = read_json(folder / "modules.json")
    if not modules:
        raise InvalidInput(
            f"{folder} is not a sentence-transformers model folder (no modules.json)",
            "pass 'minilm' or a folder saved with SentenceTransformer.save()",
        )
    first = _class_name(str(modules[0].get("type", "")))
    if first != "Transformer" or modules[0].get("path", "") not in ("", "."):
        raise InvalidInput(
            f"{folder}: the first module is {first} in '{modules[0].get('path')}'; "
            "a Transformer at the folder's root is needed",
            "save the model with SentenceTransformer.save()",
        )
    st_cfg = read_json(folder / "sentence_bert_config.json")
    steps: list[dict[str, Any]] = []
    for module in modules[1:]:
        kind, path = _class_name(str(module.get("type", ""))), str(module.get("path", ""))
        cfg = read_json(folder / path / "config.json")
        if kind == "Pooling":
            steps.append(_pooling_step(cfg))
        elif kind == "Dense":
            steps.append(_dense_step(cfg, path))
        elif kind == "Normalize":
            steps.append(_normalize_step(cfg))
        else:
            steps.append({"type": kind, "path": path})
    prompts, default, query, document = _resolve_prompts(folder)
    reason = _unsupported(steps, st_cfg)
    return PipelineSpec(
        dim=_output_dim(folder, steps), max_seq_length=_max_seq_length(folder, st_cfg),
        lowercase=bool(st_cfg.get("do_lower_case", False)), steps=tuple(steps),
        prompts=prompts, default_prompt_name=default, query_prompt=query,
        document_prompt=document, fast=not reason, reason=reason,
    )


def _output_dim(folder: Path, steps: list[dict[str, Any]]) -> int:
    dim = int(read_json(folder / "config.json").get("hidden_size", 0))
    for step in steps:
        if "out_dim" in step and step.get("output", "sentence_embedding") == "sentence_embedding":
            dim = int(step["out_dim"])
    return dim


# -- running -------------------------------------------------------------------------------


def _activate(x: np.ndarray, name: str) -> np.ndarray:
    if name == "tanh":
        return np.tanh(x)
    if name == "relu":
        return np.maximum(x, 0)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if name == "silu":
        return x / (1.0 + np.exp(-x))
    if name == "gelu":
        from scipy.special import erf

        return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))
    if name == "gelu_tanh":
        return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))
    return x


def pool_tokens(
    hidden: np.ndarray, mask: np.ndarray, modes: list[str] | tuple[str, ...], prompt_length: int = 0
) -> np.ndarray:
    """Sentence vectors from token vectors ``(batch, seq, dim)`` of right-padded rows, one
    block per mode, concatenated; the first ``prompt_length`` tokens left out when given."""
    keep = mask.astype(bool)
    if prompt_length:
        keep = keep.copy()
        keep[:, :prompt_length] = False
    weights = keep.astype(hidden.dtype)
    rows = np.arange(hidden.shape[0])
    out = []
    for mode in modes:
        if mode == "cls":
            out.append(hidden[rows, keep.argmax(axis=1)])
        elif mode == "max":
            out.append(np.where(keep[:, :, None], hidden, -np.inf).max(axis=1))
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            count = np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)
            summed = np.einsum("bsd,bs->bd", hidden, weights)
            out.append(summed / (count if mode == "mean" else np.sqrt(count)))
        elif mode == "weightedmean":
            position = weights * np.arange(1, hidden.shape[1] + 1, dtype=hidden.dtype)
            summed = np.einsum("bsd,bs->bd", hidden, position)
            out.append(summed / np.maximum(position.sum(axis=1, keepdims=True), 1e-9))
        elif mode == "lasttoken":
            any_kept = np.asarray(keep.any(axis=1))
            last = np.where(any_kept, hidden.shape[1] - 1 - keep[:, ::-1].argmax(axis=1),
                            hidden.shape[1] - 1)
            out.append(hidden[rows, last] * any_kept[:, None])
        else:
            raise InvalidInput(f"unknown pooling mode '{mode}'", f"use one of {POOLING_MODES}")
    return np.concatenate(out, axis=1) if len(out) > 1 else out[0]


class PostPipeline:
    """Runs a ``PipelineSpec``'s steps on hidden states (the Dense weights read once)."""

    def __init__(self, spec: PipelineSpec, model_dir: Path) -> None:
        if not spec.fast:
            raise InvalidInput(f"this model has no fast path: {spec.reason}",
                               "use backend 'sentence-transformers'")
        self.spec = spec
        self.weights: dict[int, dict[str, np.ndarray]] = {}
        for i, step in enumerate(spec.steps):
            if step["type"] == "dense":
                self.weights[i] = _dense_weights(model_dir / step["path"], step)

    def __call__(
        self, hidden: np.ndarray, mask: np.ndarray, prompt_length: int = 0
    ) -> np.ndarray:
        """float32 sentence vectors of one padded batch."""
        features = {"token_embeddings": hidden.astype(np.float32, copy=False)}
        for i, step in enumerate(self.spec.steps):
            if step["type"] == "pooling":
                length = 0 if step["include_prompt"] else prompt_length
                features["sentence_embedding"] = pool_tokens(
                    features["token_embeddings"], mask, step["modes"], length)
            elif step["type"] == "dense":
                x = features[step["input"]]
                w = self.weights[i]
                y = x @ w["weight"].T
                if "bias" in w:
                    y = y + w["bias"]
                y = _activate(y, step["activation"])
                if step["residual"]:
                    y = y + (x @ w["residual"].T if "residual" in w else x)
                features[step["output"]] = y
            elif step["type"] == "normalize":
                x = features[step["input"]]
                norms = np.linalg.norm(x, axis=-1, keepdims=True)
                features[step["output"]] = x / np.maximum(norms, 1e-12)
        return np.asarray(features["sentence_embedding"], dtype=np.float32)


def _dense_weights(folder: Path, step: dict[str, Any]) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    path = folder / "model.safetensors"
    if not path.is_file():
        raise InvalidInput(f"{folder} has no model.safetensors for its Dense layer",
                           "re-save the model with safe_serialization=True")
    raw = load_file(str(path))
    out = {"weight": raw["linear.weight"].astype(np.float32)}
    if step["bias"] and "linear.bias" in raw:
        out["bias"] = raw["linear.bias"].astype(np.float32)
    if "residual.weight" in raw:
        out["residual"] = raw["residual.weight"].astype(np.float32)
    return out
