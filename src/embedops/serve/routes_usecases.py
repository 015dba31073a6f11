"""Use-case routes over ``embedops.usecases``: classify, recommend (more-like-this), cluster,
near-duplicates.

Role checks as for search: READ for queries (predict, recommend, cluster without ``store``),
WRITE for whatever stores (training a classifier, storing cluster assignments).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from embedops.serve.auth import READ, WRITE, authorize
from embedops.serve.keys import Role
from embedops.serve.openapi import AUTH, BODY, errors
from embedops.serve.schemas_usecases import (
    ClassifyPredictRequest,
    ClassifyTrainRequest,
    ClusterRequest,
    DuplicatesRequest,
    RecommendRequest,
)

router = APIRouter(prefix="/v1", tags=["usecases"], responses=errors(*AUTH, *BODY, 404, 409))


@router.post("/classifiers", summary="Train a classifier")
def classify_train(request: Request, body: ClassifyTrainRequest, _: Any = WRITE) -> Any:
    """Train a logistic-regression head on a collection's vectors; returns its manifest
    (ref, model version, labels, held-out accuracy / macro-F1 / confusion matrix)."""
    from embedops.usecases import classify

    clf = classify.train(request.app.state.ctx.api, body.collection, body.label_field,
                         body.name, body.labels, body.test_size, body.c,
                         features=body.features)
    return clf.manifest


@router.get("/classifiers/{ref}", summary="A classifier's manifest")
def classify_show(request: Request, ref: str, _: Any = READ) -> Any:
    """The manifest of classifier ``name`` or ``name@N``."""
    from embedops.usecases import classify

    return classify.load(request.app.state.ctx.api, ref).manifest


@router.post("/classifiers/{ref}/predict", summary="Classify texts")
def classify_predict(request: Request, ref: str, body: ClassifyPredictRequest,
                     _: Any = READ) -> Any:
    """Top-k labels with calibrated probabilities; ``label`` null when abstaining."""
    from embedops.usecases import classify

    preds = classify.predict_texts(request.app.state.ctx.api, ref, body.texts, body.k,
                                   body.threshold)
    return {"classifier": ref, "predictions": [p.to_dict() for p in preds]}


@router.post("/collections/{name}/recommend", summary="More like these items")
def recommend(request: Request, name: str, body: RecommendRequest, _: Any = READ) -> Any:
    """Items like ``positive`` / the weighted history, unlike ``negative``, from the served
    index; ``exclude`` and the examples are never returned."""
    from embedops.usecases import recommend as rec

    history = dict.fromkeys(body.positive, 1.0) | dict(body.weights or {})
    hits = rec.recommend(request.app.state.ctx.api, name, history, body.negative,
                         body.exclude, body.k, body.filters, body.diversity)
    return {"hits": [h.to_dict() for h in hits]}


@router.post("/collections/{name}/cluster", summary="Cluster a collection")
def cluster(request: Request, name: str, body: ClusterRequest, _: Any = READ) -> Any:
    """k-means with a k sweep; clusters named by terms and central items; ``store`` (write
    role) writes the assignments into metadata."""
    from embedops.usecases import cluster as clu

    if body.store:
        authorize(request, Role.write)
    report = clu.cluster(request.app.state.ctx.api, name, body.k, body.filters,
                         body.label_field, body.store)
    return report.to_dict(with_assignments=body.assignments)


@router.post("/collections/{name}/duplicates", summary="Near-duplicate report")
def duplicates(request: Request, name: str, body: DuplicatesRequest, _: Any = READ) -> Any:
    """Duplicate and near-duplicate pairs and groups, found through the ANN index."""
    from embedops.usecases import dedup

    report = dedup.find_duplicates(request.app.state.ctx.api, name, body.threshold,
                                   body.lexical, filters=body.filters)
    return report.to_dict()
