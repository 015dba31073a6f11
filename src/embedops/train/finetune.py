"""Contrastive fine-tuning of a transformer from ``{"anchor", "positive"[, "negative"]}`` pairs.

A small plain torch loop over sentence-transformers' MultipleNegativesRankingLoss: every other
positive in the batch is a negative (in-batch negatives), plus an explicit negative per pair when
the file has one or when ``hard_negatives`` mines one with the current model. The result is a new
transformer ModelVersion whose manifest names its parent and holds the held-out retrieval scores
before and after training.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedops.errors import FormatError, InvalidInput
from embedops.evaluate.retrieval import evaluate_run
from embedops.models.registry import ModelVersion, Registry
from embedops.progress import progress_bar

MODEL_SUBDIR = "model"


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning settings; round-trips ``FinetuneConfig(**cfg.to_dict())``."""

    epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    scale: float = 20.0
    hard_negatives: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInput(f"{name} must be a positive integer, got {value!r}")
        if self.batch_size < 2:
            raise InvalidInput("batch_size must be at least 2 (in-batch negatives need two pairs)")
        if not isinstance(self.learning_rate, int | float) or not 0 < self.learning_rate < 1:
            raise InvalidInput(f"learning_rate must be in (0, 1), got {self.learning_rate!r}")
        if not isinstance(self.warmup_ratio, int | float) or not 0 <= self.warmup_ratio < 1:
            raise InvalidInput(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class Pair:
    """One training example: ``anchor`` should be closer to ``positive`` than to ``negative``."""

    anchor: str
    positive: str
    negative: str | None = None


def read_pairs(path: Path) -> list[Pair]:
    """Parse a JSONL file of pairs; a bad line is refused with its line number."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(f"cannot read {path}: {exc}", "pass a UTF-8 JSONL file") from exc
    pairs = [_parse_line(path, n, line) for n, line in enumerate(lines, start=1) if line.strip()]
    if not pairs:
        raise FormatError(
            f"{path} has no pairs", 'write one {"anchor": ..., "positive": ...} a line'
        )
    return pairs


def _parse_line(path: Path, lineno: int, line: str) -> Pair:
    where = f"{path} line {lineno}"
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise FormatError(
            f"{where} is not valid JSON: {exc.msg}", "one JSON object a line"
        ) from exc
    if not isinstance(obj, dict):
        raise FormatError(f"{where} is not a JSON object", 'write {"anchor": ..., "positive": ...}')
    unknown = sorted(set(obj) - {"anchor", "positive", "negative"})
    if unknown:
        raise FormatError(f"{where} has unknown keys {unknown}", "keys: anchor, positive, negative")
    for key in ("anchor", "positive", "negative"):
        if key not in obj and key != "negative":
            raise FormatError(f"{where} has no '{key}'", f"every line needs '{key}'")
        value = obj.get(key, "")
        if key in obj and (not isinstance(value, str) or not value.strip()):
            raise FormatError(f"{where}: '{key}' must be a non-empty string, got {value!r}")
    return Pair(obj["anchor"], obj["positive"], obj.get("negative"))


def load_sentence_transformer(mv: ModelVersion) -> Any:
    """The sentence-transformers model of a transformer ModelVersion, loaded offline on CPU."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from sentence_transformers import SentenceTransformer

    folder = mv.path / MODEL_SUBDIR if (mv.path / MODEL_SUBDIR).is_dir() else mv.path
    return SentenceTransformer(str(folder), device="cpu", local_files_only=True)


def _anchor_scores(model: Any, pairs: list[Pair]) -> tuple[list[str], np.ndarray]:
    """The distinct positives and the cosine of every anchor with each of them."""
    docs = list(dict.fromkeys(p.positive for p in pairs))
    doc_vecs, query_vecs = (
        model.encode(
            texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        for texts in (docs, [p.anchor for p in pairs])
    )
    return docs, query_vecs @ doc_vecs.T


def evaluate_pairs(model: Any, pairs: list[Pair], k: int = 10) -> dict[str, float]:
    """Retrieve each anchor's positive among all distinct positives; recall@k and MRR@k."""
    docs, scores = _anchor_scores(model, pairs)
    top = np.argsort(-scores, axis=1)[:, :k]
    runs = [[docs[j] for j in row] for row in top]
    result = evaluate_run(runs, [{p.positive} for p in pairs], ks=(k,))
    return {
        "n": len(pairs),
        f"recall@{k}": round(result[f"recall@{k}"], 4),
        f"mrr@{k}": round(result[f"mrr@{k}"], 4),
    }


def mine_hard_negatives(model: Any, pairs: list[Pair]) -> list[Pair]:
    """Give each pair without a negative the other positive the current model ranks highest."""
    if len({p.positive for p in pairs}) < 2:
        return pairs
    docs, scores = _anchor_scores(model, pairs)
    out = []
    for i, pair in enumerate(pairs):
        if pair.negative is not None:
            out.append(pair)
            continue
        for j in np.argsort(-scores[i]):
            if docs[j] != pair.positive:
                out.append(Pair(pair.anchor, pair.positive, docs[j]))
                break
    return out


def _batches(pairs: list[Pair], size: int, rng: random.Random) -> list[list[Pair]]:
    """Shuffled batches in which no positive repeats (a repeat would be a false negative)."""
    order = pairs[:]
    rng.shuffle(order)
    batches: list[list[Pair]] = []
    current: list[Pair] = []
    seen: set[str] = set()
    for pair in order:
        if pair.positive in seen or len(current) == size:
            batches.append(current)
            current, seen = [], set()
        current.append(pair)
        seen.add(pair.positive)
    if len(current) > 1:
        batches.append(current)
    return [b for b in batches if len(b) > 1]


def train_pairs(model: Any, pairs: list[Pair], config: FinetuneConfig) -> list[float]:
    """Train ``model`` in place; return the mean loss of each epoch."""
    import torch
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    loss_fn = MultipleNegativesRankingLoss(model, scale=config.scale)
    plan = [_batches(pairs, config.batch_size, rng) for _ in range(config.epochs)]
    total = sum(len(b) for b in plan)
    if total == 0:
        raise InvalidInput("too few distinct pairs to form a batch", "pass at least two pairs")
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    warmup = max(1, int(total * config.warmup_ratio))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup)))
    )
    model.train()
    losses: list[float] = []
    with progress_bar("fine-tuning", total, unit="batches") as bar:
        for batches in plan:
            epoch_losses = []
            for batch in batches:
                epoch_losses.append(_step(model, loss_fn, batch, optimizer, schedule))
                bar.advance()
            losses.append(float(np.mean(epoch_losses)))
    model.eval()
    return losses


def _step(model: Any, loss_fn: Any, batch: list[Pair], optimizer: Any, schedule: Any) -> float:
    columns = [[p.anchor for p in batch], [p.positive for p in batch]]
    if all(p.negative is not None for p in batch):
        columns.append([p.negative for p in batch if p.negative is not None])
    features = [dict(model.preprocess(col)) for col in columns]
    loss = loss_fn(features, None)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    schedule.step()
    return float(loss.detach())


def finetune(
    registry: Registry,
    parent_ref: str,
    name: str,
    train_path: Path,
    eval_path: Path | None = None,
    config: FinetuneConfig | None = None,
    *,
    onnx: bool = True,
) -> ModelVersion:
    """Fine-tune transformer ``parent_ref`` on ``train_path`` pairs; publish it as ``name``.

    With ``eval_path`` the held-out recall/MRR before and after go into the manifest's
    ``eval.heldout``; with ``onnx`` the ONNX files of the new weights are built as on import.
    """
    config = config or FinetuneConfig()
    pairs = read_pairs(train_path)
    heldout = read_pairs(eval_path) if eval_path is not None else None
    parent = registry.get(parent_ref, verify=True)
    if parent.kind != "transformer":
        raise InvalidInput(
            f"{parent.ref} is a {parent.kind} model; fine-tuning needs a transformer",
            "import a transformer first (e.g. MiniLM with 'embedops import')",
        )
    model = load_sentence_transformer(parent)
    before = evaluate_pairs(model, heldout) if heldout else None
    if config.hard_negatives:
        pairs = mine_hard_negatives(model, pairs)
    losses = train_pairs(model, pairs, config)
    after = evaluate_pairs(model, heldout) if heldout else None
    evaluation = {"heldout": {"before": before, "after": after}} if before is not None else {}
    params = {"finetune": config.to_dict(), "train_losses": losses, "train_pairs": len(pairs)}
    return _publish(registry, name, parent, model, params, evaluation, train_path, onnx)


_INHERITED = ("max_seq_length", "pooling", "normalize", "tokenizer", "tokenizer_fingerprint")


def _publish(
    registry: Registry,
    name: str,
    parent: ModelVersion,
    model: Any,
    params: dict[str, Any],
    evaluation: dict[str, Any],
    train_path: Path,
    onnx: bool,
) -> ModelVersion:
    """Save the weights in the import layout (``model/``, optional ``onnx/``) as a new version.

    The tokenizer is unchanged by training, so its files are copied from the parent and the
    tokenizer fingerprint is inherited: queries are split exactly as before.
    """
    from embedops.fsio import sha256_file

    inherited = {k: parent.manifest[k] for k in _INHERITED if k in parent.manifest}
    with registry.draft(
        name,
        "transformer",
        dim=parent.dim,
        parent=parent.ref,
        eval=evaluation,
        training_data_sha256=sha256_file(train_path),
        **inherited,
    ) as draft:
        target = draft.path / MODEL_SUBDIR
        model.save(str(target), create_model_card=False, safe_serialization=True)
        for stray in [*target.rglob("*.bin"), *target.rglob("README.md")]:
            stray.unlink()
        source = parent.path / MODEL_SUBDIR
        for tok_file in source.glob("*token*"):
            shutil.copyfile(tok_file, target / tok_file.name)
        if (source / "vocab.txt").is_file():
            shutil.copyfile(source / "vocab.txt", target / "vocab.txt")
        if onnx:
            from embedops.models.onnx_backend import build_onnx

            params["onnx"] = build_onnx(target, draft.path, None)
        base = {k: v for k, v in parent.params.items() if k != "onnx"}
        draft.manifest["params"] = {**base, **params}
    assert draft.published is not None
    return draft.published
