"""The automatic candidate of a retrain proposal: trained on recent data plus mined feedback
pairs, then evaluated against the collection's golden set, through the engine's public methods.

    from embedops.lifecycle.candidate import TrainSettings, train_candidate, golden_evaluation
    made = train_candidate(api, "docs", "lee@1", TrainSettings(method="static"), golden)
    verdict = golden_evaluation(api, "docs", "lee@1", made.ref, golden, k=10, margin=0.02)

Training (``method``; ``auto`` picks by the active model's kind):

- ``static``: word2vec retrained (``Embedops.models.train``) on the collection's texts as they
  are now (the recent data that drifted included) plus, ``pair_weight`` times each, one line
  per mined pair joining the query and the item the user chose, so the words people search
  with land next to the words of what they meant. ``params`` are ``TrainConfig`` fields
  (default: the active model's dim).
- ``finetune``: the active transformer fine-tuned (``Embedops.models.finetune``) on the mined
  pairs with their hard negatives, the held-out pairs recorded in its manifest. ``params`` are
  ``FinetuneConfig`` fields; at least ``min_pairs`` pairs are needed.

Mined pairs whose query is one of the golden set's are left out of training, so the
evaluation never scores a model on the queries it was trained on. The training files hold
item texts: they live in a temporary folder under the workspace, removed when training ends.

Evaluation: recall@k of the active model and of the candidate on the golden set, each by exact
search over the same pool of items (every golden query's relevant items plus an even sample of
the others, ``eval_items`` in all; the whole collection when smaller). The candidate passes
when its recall beats the active's by the proposal's margin.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedops.engine import Embedops
from embedops.errors import InvalidInput
from embedops.evaluate.retrieval import evaluate_run
from embedops.models.registry import ModelVersion
from embedops.monitor.db import GoldenQuery, MonitorDB

METHODS = ("auto", "static", "finetune")
BATCH = 512


@dataclass(frozen=True)
class TrainSettings:
    """How a proposal's candidate is made (the ``train`` object of the retrain policy; see the
    module doc). Round-trips ``TrainSettings(**d)``."""

    method: str = "auto"
    params: dict[str, Any] | None = None
    name: str | None = None
    golden_set: str | None = None
    golden_k: int = 10
    min_evidence: int = 2
    holdout: float = 0.2
    min_pairs: int = 16
    pair_weight: int = 3
    eval_items: int = 20_000
    nice: int = 10

    def __post_init__(self) -> None:
        from embedops.lifecycle.worker import check_nice

        if self.method not in METHODS:
            raise InvalidInput(f"unknown training method {self.method!r}",
                               f"use one of {', '.join(METHODS)}")
        bad = [name for name, ok in {
            "params": self.params is None or isinstance(self.params, dict),
            "golden_k": 1 <= self.golden_k <= 1000,
            "min_evidence": self.min_evidence >= 1,
            "holdout": 0.0 <= self.holdout < 1.0,
            "min_pairs": self.min_pairs >= 2,
            "pair_weight": 0 <= self.pair_weight <= 100,
            "eval_items": self.eval_items >= 100,
        }.items() if not ok]
        if bad:
            raise InvalidInput(f"retrain settings out of range: {', '.join(bad)}",
                               "params is an object, golden_k 1-1000, min_evidence >= 1, "
                               "holdout in [0, 1), min_pairs >= 2, pair_weight 0-100, "
                               "eval_items >= 100")
        check_nice(self.nice)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_method(api: Embedops, active: str, settings: TrainSettings) -> str:
    """``static`` or ``finetune`` for ``active`` (``auto``: fine-tune a transformer, retrain
    anything else); a fine-tune of a static model is refused."""
    kind = api.models.resolve(active).kind
    transformer = kind == "transformer"
    if settings.method == "auto":
        return "finetune" if transformer else "static"
    if settings.method == "finetune" and not transformer:
        raise InvalidInput(f"the active model {active} is {kind}, not a transformer: it cannot "
                           "be fine-tuned", 'use "method": "static" (or "auto") in the policy')
    return settings.method


def golden_queries(api: Embedops, name: str) -> list[GoldenQuery]:
    """The queries of golden set ``name`` (decrypted where stored so)."""
    db = MonitorDB(api.workspace, api)
    try:
        return db.queries(name, api)
    finally:
        db.close()


def train_candidate(api: Embedops, collection: str, active: str, settings: TrainSettings,
                    golden: Sequence[GoldenQuery]) -> tuple[ModelVersion, dict[str, Any]]:
    """Train the candidate for ``collection`` (served by ``active``); returns it and a summary
    (method, pairs used and left out, corpus lines, seconds) for the proposal and the audit."""
    from embedops.monitor.feedback import Feedback

    if api.collection_info(collection).encrypted:
        raise InvalidInput(
            f"'{collection}' is encrypted at rest, and training a candidate stages its texts "
            "and mined pairs in plain files", "train a candidate by hand where plaintext may be "
            "written, or set auto_train to false in the retrain policy")
    method = resolve_method(api, active, settings)
    db = MonitorDB(api.workspace, api)
    try:
        mined = Feedback(api, db).mine(collection, settings.min_evidence, settings.holdout)
    finally:
        db.close()
    asked = {_norm(q.query) for q in golden}
    train = [p for p in mined.train if _norm(p["anchor"]) not in asked]
    heldout = [p for p in mined.heldout if _norm(p["anchor"]) not in asked]
    summary: dict[str, Any] = {"method": method, "pairs": len(train), "heldout": len(heldout),
                               "left_out_golden": len(mined.train) + len(mined.heldout)
                               - len(train) - len(heldout)}
    name = settings.name or f"{active.partition('@')[0].removesuffix('-retrain')}-retrain"
    began = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="retrain-", dir=api.workspace.staging_dir))
    try:
        if method == "finetune":
            made = _finetune(api, active, name, settings, train, heldout, work)
        else:
            made, lines = _static(api, collection, active, name, settings, train + heldout,
                                  work)
            summary["corpus_lines"] = lines
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary["seconds"] = round(time.perf_counter() - began, 2)
    return made, summary


def _static(api: Embedops, collection: str, active: str, name: str, settings: TrainSettings,
            pairs: list[dict[str, str]], work: Path) -> tuple[ModelVersion, int]:
    from embedops.train.word2vec import TrainConfig

    corpus = work / "corpus.txt"
    lines = 0
    with corpus.open("w", encoding="utf-8") as fh:
        for item in api.iter_items(collection):
            fh.write(_line(item.text))
            lines += 1
        for _ in range(settings.pair_weight):
            for pair in pairs:
                fh.write(_line(f"{pair['anchor']} {pair['positive']}"))
                lines += 1
    if not lines:
        raise InvalidInput(f"'{collection}' has no items to retrain on",
                           "write items first, or turn auto_train off in the retrain policy")
    params = {"dim": api.models.resolve(active).dim, **(settings.params or {})}
    try:
        config = TrainConfig(**params)
    except TypeError as exc:
        raise InvalidInput(f"retrain policy 'train.params': {exc}",
                           "use the fields of 'embedops train' (dim, epochs, min_count, ...)"
                           ) from exc
    return api.models.train(corpus, name, config).version, lines


def _finetune(api: Embedops, active: str, name: str, settings: TrainSettings,
              train: list[dict[str, str]], heldout: list[dict[str, str]],
              work: Path) -> ModelVersion:
    import json

    from embedops.train.finetune import FinetuneConfig

    if len(train) < settings.min_pairs:
        raise InvalidInput(f"only {len(train)} mined training pairs; fine-tuning {active} "
                           f"needs at least {settings.min_pairs}",
                           "wait for more feedback, or lower train.min_pairs in the policy")
    paths = {"train": work / "pairs_train.jsonl", "heldout": work / "pairs_heldout.jsonl"}
    for kind, rows in (("train", train), ("heldout", heldout)):
        paths[kind].write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                               encoding="utf-8")
    try:
        config = FinetuneConfig(**(settings.params or {}))
    except TypeError as exc:
        raise InvalidInput(f"retrain policy 'train.params': {exc}",
                           "use the fields of 'embedops finetune' (epochs, batch_size, ...)"
                           ) from exc
    return api.models.finetune(active, name, paths["train"],
                               paths["heldout"] if heldout else None, config)


def golden_evaluation(api: Embedops, collection: str, active: str, candidate: str,
                      golden_set: str, golden: Sequence[GoldenQuery], k: int, margin: float,
                      eval_items: int = 20_000) -> dict[str, Any]:
    """recall@k of ``active`` and ``candidate`` on ``golden`` over one pool of items (module
    doc); ``{"metric", "golden_set", "queries", "pool", "active", "candidate", "gain",
    "margin", "passed", "reason"}``."""
    if not golden:
        raise InvalidInput(f"golden set '{golden_set}' has no queries",
                           f"add some with 'embedops golden import {golden_set} FILE.jsonl'")
    pool = _pool(api, collection, golden, eval_items)
    items = [it for at in range(0, len(pool), BATCH)
             for it in api.get_items(collection, pool[at:at + BATCH])]
    ids = [it.id for it in items]
    texts = [it.text for it in items]
    queries = [q.query for q in golden]
    qrels = [q.relevant for q in golden]
    scores = {ref: _recall(api, ref, ids, texts, queries, qrels, k)
              for ref in (active, candidate)}
    gain = round(scores[candidate] - scores[active], 6)
    passed = gain >= margin
    metric = f"recall@{k}"
    reason = (f"golden '{golden_set}' {metric} {scores[candidate]:.4f} vs active "
              f"{scores[active]:.4f} over {len(ids)} items: gain {gain:+.4f} "
              f"{'meets' if passed else 'is below'} the margin {margin}")
    return {"metric": metric, "golden_set": golden_set, "queries": len(golden),
            "pool": len(ids), "active": round(scores[active], 6),
            "candidate": round(scores[candidate], 6), "gain": gain, "margin": margin,
            "passed": passed, "reason": reason}


def _pool(api: Embedops, collection: str, golden: Sequence[GoldenQuery], size: int) -> list[str]:
    """Every relevant item of the golden set, then an even sample of the others, ``size`` in
    all (every item when the collection is smaller)."""
    every = sorted(api.item_ids(collection))
    if len(every) <= size:
        return every
    wanted = {i for q in golden for i in q.relevant} & set(every)
    relevant = sorted(wanted)
    others = [i for i in every if i not in wanted]
    room = max(0, size - len(relevant))
    step = max(1, len(others) // room) if room else len(others) + 1
    return relevant + others[::step][:room]


def _recall(api: Embedops, ref: str, ids: list[str], texts: list[str], queries: list[str],
            qrels: list[dict[str, float]], k: int) -> float:
    docs = _unit(np.concatenate([api.models.embed(texts[at:at + BATCH], ref)
                                 for at in range(0, len(texts), BATCH)]))
    asked = _unit(np.concatenate([api.models.encode_queries(queries[at:at + BATCH], ref)
                                  for at in range(0, len(queries), BATCH)]))
    scores = asked @ docs.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    runs = [[ids[j] for j in row] for row in top]
    return float(evaluate_run(runs, qrels, (k,))[f"recall@{k}"])


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / np.where(norms == 0, 1.0, norms), dtype=np.float32)


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _line(text: str) -> str:
    return " ".join(text.split()) + "\n"
