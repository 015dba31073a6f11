"""Mapping between embedding spaces: an orthogonal (Procrustes) map from one model version to
another, learnt from a seed dictionary of word or text pairs (``monitor.compare.AlignmentMap``
does the fitting and applying), measured by precision@1/@10 of translation on held-out pairs,
and published as a versioned artefact with both versions in its manifest.

The same tool maps between languages (a bilingual seed dictionary) and maps an old model version
onto a new one (the identity dictionary over shared words).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from embedops.errors import InvalidInput
from embedops.monitor.compare import AlignmentMap, fit_procrustes
from embedops.usecases import artefacts

if TYPE_CHECKING:
    from embedops.engine.facade import Embedops

KIND = "maps"
MIN_PAIRS = 4


def fit(eo: Embedops, source: str, target: str, pairs: Sequence[tuple[str, str]],
        name: str, test_share: float = 0.2, seed: int = 0) -> dict[str, Any]:
    """Fit a map from ``source`` to ``target`` on the seed ``pairs`` (source text, target text),
    score it on a held-out share and publish it; returns the manifest."""
    if len(pairs) < MIN_PAIRS:
        raise InvalidInput(f"a map needs at least {MIN_PAIRS} seed pairs, got {len(pairs)}")
    if not 0.0 < test_share < 1.0:
        raise InvalidInput(f"test_share must be in (0, 1), got {test_share}")
    src_ref, tgt_ref = eo.models.resolve(source).ref, eo.models.resolve(target).ref
    a = eo.embed([p[0] for p in pairs], src_ref)
    b = eo.embed([p[1] for p in pairs], tgt_ref)
    known = np.flatnonzero((np.abs(a).sum(1) > 0) & (np.abs(b).sum(1) > 0))
    if len(known) < MIN_PAIRS:
        raise InvalidInput(f"only {len(known)} seed pairs are known to both models",
                           "use words both vocabularies hold")
    perm = np.random.default_rng(seed).permutation(known)
    n_test = max(1, int(round(test_share * len(perm))))
    test, train = perm[:n_test], perm[n_test:]
    amap = fit_procrustes(a[train], b[train], src_ref, tgt_ref)
    scores = precision(amap.apply(a[test], src_ref), b, test)
    manifest = {"source": src_ref, "target": tgt_ref, "residual": amap.residual,
                "train_pairs": len(train), "test_pairs": len(test), "metrics": scores}
    _, stored = artefacts.publish(eo.workspace, KIND, name, {"matrix": amap.matrix}, manifest)
    return stored


def precision(mapped: np.ndarray, targets: np.ndarray, rows: np.ndarray) -> dict[str, float]:
    """precision@1/@10: how often row ``rows[i]`` of ``targets`` is the nearest (top 10) of
    ``mapped[i]`` among all ``targets`` rows (the seed dictionary's target side)."""
    unit = targets / np.maximum(np.linalg.norm(targets, axis=1, keepdims=True), 1e-12)
    sims = mapped @ unit.T
    rank = (sims > sims[np.arange(len(rows)), rows][:, None]).sum(1)
    return {"p@1": float((rank < 1).mean()), "p@10": float((rank < 10).mean())}


def show(eo: Embedops, ref: str) -> dict[str, Any]:
    """The manifest of map ``name`` or ``name@N`` (versions, residual, held-out precision)."""
    name, version = artefacts.parse_ref(ref)
    return artefacts.load(eo.workspace, KIND, name, version)[0]


def load(eo: Embedops, ref: str) -> AlignmentMap:
    """The published map ``name`` or ``name@N``."""
    name, version = artefacts.parse_ref(ref)
    manifest, arrays = artefacts.load(eo.workspace, KIND, name, version)
    return AlignmentMap(manifest["source"], manifest["target"], arrays["matrix"],
                        float(manifest["residual"]))


def apply(eo: Embedops, ref: str, vectors: np.ndarray, version: str) -> np.ndarray:
    """Map ``version`` vectors into the target space (refused for any other version)."""
    return load(eo, ref).apply(np.asarray(vectors, dtype=np.float32), version)


def apply_texts(eo: Embedops, ref: str, texts: Sequence[str]) -> tuple[AlignmentMap, np.ndarray]:
    """``(map, vectors)``: ``texts`` embedded with the map's source model and mapped into its
    target space."""
    amap = load(eo, ref)
    return amap, amap.apply(eo.embed(texts, amap.source), amap.source)
