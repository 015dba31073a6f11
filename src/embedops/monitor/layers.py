"""Where recall is lost: model, quantization and ANN, measured on one golden set.

Each stage answers the set's queries; the recall lost by a layer is the drop from the stage
before it:

- ``reference exact`` — exact search over another model version's vectors (optional),
- ``exact`` — exact search over this version's float vectors (the model's own ceiling),
- ``quantized exhaustive`` — the served index's codes scanned without the ANN shortcut
  (an ivfpq index rebuilt with every cell probed; sq8 scans everything already),
- ``served`` — the index the service answers from.

So ``model`` = reference − exact, ``quantization`` = exact − quantized, ``ann`` = quantized −
served. A negative loss means the later stage did better on this set. With ``snapshot``, an
older published snapshot of the same index answers too (stage ``snapshot NAME``), and
``snapshot`` in ``losses`` is its recall minus the served one's: what the rebuild lost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from embedops.engine import Embedops
from embedops.errors import Unavailable
from embedops.evaluate.retrieval import evaluate_run
from embedops.monitor.db import GoldenQuery, MonitorDB
from embedops.search.dense import exact_search
from embedops.search.served import ServedIndex

QUANTIZED_KINDS = ("sq8", "ivfpq")
Ranker = Callable[[np.ndarray, int], list[str]]


@dataclass(frozen=True)
class LayerReport:
    """Recall of each stage and the recall lost by each layer, at cut-off ``k``."""

    collection: str
    set: str
    k: int
    model_version: str
    index_kind: str
    stages: dict[str, float]
    losses: dict[str, float]
    exact_overlap: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        """A plain-text table: stage, recall@k, and the loss of the layer it adds."""
        layer_of = {"exact": "model", "quantized exhaustive": "quantization", "served": "ann"}
        lines = [f"{'stage':<22} {'recall@' + str(self.k):>10} {'layer':>13} {'lost':>8}"]
        for stage, recall in self.stages.items():
            layer = "snapshot" if stage.startswith("snapshot ") else layer_of.get(stage, "")
            lost = self.losses.get(layer)
            lines.append(f"{stage:<22} {recall:>10.4f} {layer:>13} "
                         f"{'' if lost is None else f'{lost:+.4f}':>8}")
        lines.append(f"served top-{self.k} agreeing with exact top-{self.k}: "
                     f"{self.exact_overlap:.4f}")
        return "\n".join(lines + self.notes)


def exact_ranker(api: Embedops, collection: str, version: str) -> Ranker:
    ids, vectors = api.load_vectors(collection, version)
    if not len(ids):
        raise Unavailable(
            f"collection '{collection}' holds no {version} vectors",
            "backfill that version first (rollout start / two-stage configure)",
        )
    metric = str(api.collections.info(collection).metric)
    return lambda q, k: [i for i, _ in exact_search(q, ids, vectors, metric, k)]


def _quantized_ranker(api: Embedops, collection: str, version: str,
                      served: ServedIndex) -> Ranker | None:
    """A ranker over the served index's codes without the ANN shortcut (None when the index
    does not quantize, or already scans everything)."""
    kind = str(served.meta.get("kind", ""))
    if kind != "ivfpq":
        return None
    from embedops.index import make_index

    ids, vectors = api.load_vectors(collection, version)
    params = {**dict(served.meta.get("params") or {}), "nprobe": 1 << 20}
    index = make_index(kind, served.dim, served.metric, params)
    index.build(np.asarray(vectors, np.float32), np.arange(len(ids), dtype=np.int64))

    def rank(q: np.ndarray, k: int) -> list[str]:
        found, _ = index.search(q.reshape(1, -1).astype(np.float32), k)
        return [ids[int(j)] for j in found[0] if j >= 0]

    return rank


def _snapshot_ranker(api: Embedops, collection: str, version: str, name: str) -> Ranker:
    """A ranker over a published snapshot of the index, verified before it is loaded."""
    from embedops.errors import NotFound

    store = api.snapshots(collection, version)
    infos = {info.name: info for info in store.list()}
    if name not in infos:
        raise NotFound(f"no snapshot '{name}' of {collection}/{version}",
                       f"choose one of {', '.join(infos) or 'none'} (embedops index status)")
    loaded = store.load(name)  # verified first; segmented snapshots too
    index, keys = loaded.index, loaded.keys

    def rank(q: np.ndarray, k: int) -> list[str]:
        found, _ = index.search(q.reshape(1, -1).astype(np.float32), k)
        return [keys[int(j)] for j in found[0] if j >= 0]

    return rank


def _served_ranker(served: ServedIndex) -> Ranker:
    return lambda q, k: [i for i, _ in served.search(q, k)]


def _recall(rankers: dict[str, Ranker], queries: Sequence[GoldenQuery],
            encode: Callable[[str, str], np.ndarray], versions: dict[str, str],
            k: int) -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {name: [] for name in rankers}
    for q in queries:
        vecs: dict[str, np.ndarray] = {}
        for name, rank in rankers.items():
            version = versions[name]
            if version not in vecs:
                vecs[version] = encode(q.query, version)
            out[name].append(rank(vecs[version], k))
    return out


def recall_by_layer(api: Embedops, db: MonitorDB, collection: str, set_name: str, k: int = 10,
                    model_version: str | None = None,
                    reference_version: str | None = None,
                    snapshot: str | None = None) -> LayerReport:
    """Run the stages on golden set ``set_name`` and report the recall lost by each layer."""
    queries = db.queries(set_name)
    if not queries:
        raise Unavailable(f"golden set '{set_name}' has no queries", "add queries first")
    version = api.index_version(collection, model_version)
    served = api.served_index(collection, version)
    rankers: dict[str, Ranker] = {}
    versions: dict[str, str] = {}
    if reference_version:
        ref = api.models.resolve(reference_version).ref
        rankers["reference exact"], versions["reference exact"] = (
            exact_ranker(api, collection, ref), ref)
    rankers["exact"], versions["exact"] = exact_ranker(api, collection, version), version
    quantized = _quantized_ranker(api, collection, version, served)
    if quantized is not None:
        rankers["quantized exhaustive"], versions["quantized exhaustive"] = quantized, version
    if snapshot:
        stage = f"snapshot {snapshot}"
        rankers[stage] = _snapshot_ranker(api, collection, version, snapshot)
        versions[stage] = version
    rankers["served"], versions["served"] = _served_ranker(served), version
    ranked = _recall(rankers, queries, lambda t, v: api.models.encode_queries([t], v)[0],
                     versions, k)
    rel = [q.relevant for q in queries]
    stages = {name: evaluate_run(r, rel, (k,))[f"recall@{k}"] for name, r in ranked.items()}
    return _report(collection, set_name, k, version, served, stages, ranked)


def _report(collection: str, set_name: str, k: int, version: str, served: Any,
            stages: dict[str, float], ranked: dict[str, list[list[str]]]) -> LayerReport:
    kind = str(served.meta.get("kind", "?"))
    quantized = stages.get("quantized exhaustive",
                           stages["served"] if kind in QUANTIZED_KINDS else stages["exact"])
    losses = {"quantization": stages["exact"] - quantized, "ann": quantized - stages["served"]}
    if "reference exact" in stages:
        losses = {"model": stages["reference exact"] - stages["exact"], **losses}
    for stage, recall in stages.items():
        if stage.startswith("snapshot "):
            losses["snapshot"] = recall - stages["served"]
    overlap = float(np.mean([len(set(a) & set(b)) / max(len(a), 1) for a, b in
                             zip(ranked["exact"], ranked["served"], strict=True)]))
    notes = []
    if kind == "sq8":
        notes.append("sq8 scans every code: all of its loss is quantization, none is ANN")
    elif kind not in QUANTIZED_KINDS:
        notes.append(f"{kind} keeps float vectors: no quantization loss")
    return LayerReport(collection, set_name, k, version, kind, stages,
                       {key: round(v, 6) for key, v in losses.items()}, overlap, notes)
