"""Use-case routes over ``embedops.usecases``: classify, recommend (more-like-this), cluster,
near-duplicates, mapping between spaces, query expansion, autocomplete and RAG context.

Role checks as for search: READ for queries (predict, recommend, cluster without ``store``,
expand, autocomplete, context), WRITE for whatever stores (training a classifier or a map,
storing cluster assignments, recording past queries, adding documents).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from embedops.serve.auth import READ, WRITE, authorize
from embedops.serve.keys import Role
from embedops.serve.openapi import AUTH, BODY, errors
from embedops.serve.schemas_usecases import (
    AutocompleteRequest,
    ClassifyPredictRequest,
    ClassifyTrainRequest,
    ClusterRequest,
    ContextRequest,
    DocumentsRequest,
    DuplicatesRequest,
    ExpandedSearchRequest,
    ExpandRequest,
    MapApplyRequest,
    MapFitRequest,
    RecommendRequest,
    RecordQueriesRequest,
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
    """k-means with a k sweep, or HDBSCAN (noise items labelled -1); clusters named by terms
    and central items; ``store`` (write role) writes the assignments into metadata."""
    from embedops.usecases import cluster as clu

    if body.store:
        authorize(request, Role.write)
    report = clu.cluster(request.app.state.ctx.api, name, body.k, body.filters,
                         body.label_field, body.store, method=body.method,
                         min_cluster_size=body.min_cluster_size)
    return report.to_dict(with_assignments=body.assignments)


@router.post("/collections/{name}/duplicates", summary="Near-duplicate report")
def duplicates(request: Request, name: str, body: DuplicatesRequest, _: Any = READ) -> Any:
    """Duplicate and near-duplicate pairs and groups, found through the ANN index."""
    from embedops.usecases import dedup

    report = dedup.find_duplicates(request.app.state.ctx.api, name, body.threshold,
                                   body.lexical, filters=body.filters)
    return report.to_dict()


@router.post("/maps", summary="Fit a map between two models' spaces")
def map_fit(request: Request, body: MapFitRequest, _: Any = WRITE) -> Any:
    """Fit an orthogonal (Procrustes) map from ``source`` to ``target`` on the seed pairs and
    publish it; returns its manifest (held-out precision@1/@10 under ``metrics``)."""
    from embedops.usecases import mapping

    return mapping.fit(request.app.state.ctx.api, body.source, body.target, body.pairs,
                       body.name, body.test_share)


@router.get("/maps/{ref}", summary="A map's manifest")
def map_show(request: Request, ref: str, _: Any = READ) -> Any:
    """The manifest of map ``name`` or ``name@N``."""
    from embedops.usecases import mapping

    return mapping.show(request.app.state.ctx.api, ref)


@router.post("/maps/{ref}/apply", summary="Map texts into the target space")
def map_apply(request: Request, ref: str, body: MapApplyRequest, _: Any = READ) -> Any:
    """The texts embedded with the map's source model and mapped into its target space."""
    from embedops.usecases import mapping

    amap, vectors = mapping.apply_texts(request.app.state.ctx.api, ref, body.texts)
    return {"map": ref, "source": amap.source, "target": amap.target,
            "vectors": vectors.tolist()}


@router.post("/expand", summary="Expand a query with nearest words")
def expand(request: Request, body: ExpandRequest, _: Any = READ) -> Any:
    """The terms a static model adds to ``query``, each with the word it comes from, its
    cosine and its weight."""
    from embedops.usecases import expand as exp

    options = exp.ExpandOptions(**body.model_dump(exclude={"query"}))
    return exp.expand(request.app.state.ctx.api, body.query, options).to_dict()


@router.post("/collections/{name}/expanded-search", summary="Search with query expansion")
def expanded_search(request: Request, name: str, body: ExpandedSearchRequest,
                    _: Any = READ) -> Any:
    """Lexical or hybrid search of the query with weighted expansion terms; the answer lists
    the terms added (``expansion``)."""
    from embedops.usecases import expand as exp

    options = exp.ExpandOptions(**(body.expand.model_dump() if body.expand else {}))
    found = exp.search(request.app.state.ctx.api, name, body.query, body.k, body.mode,
                       body.filters, options, body.hybrid_weight)
    return found.to_dict()


@router.post("/collections/{name}/autocomplete", summary="Complete a partial query")
def autocomplete(request: Request, name: str, body: AutocompleteRequest, _: Any = READ) -> Any:
    """Completions from the collection's vocabulary and past queries, ranked by frequency
    and similarity to what was typed."""
    from embedops.usecases import autocomplete as ac

    found = ac.complete(request.app.state.ctx.api, name, body.partial, body.k)
    return {"partial": body.partial, "completions": [c.to_dict() for c in found]}


@router.post("/collections/{name}/queries", summary="Record past queries for autocomplete")
def record_queries(request: Request, name: str, body: RecordQueriesRequest,
                   _: Any = WRITE) -> Any:
    """Count queries as past queries of the collection (what autocomplete suggests)."""
    from embedops.usecases import autocomplete as ac

    return {"recorded": ac.record(request.app.state.ctx.api, name, body.queries)}


@router.post("/collections/{name}/documents", summary="Chunk and add long documents")
def add_documents(request: Request, name: str, body: DocumentsRequest, _: Any = WRITE) -> Any:
    """Chunk documents by the model's tokens (sentences kept whole, with overlap) into items
    linked to their parent (``parent_id``, ``start``, ``end``)."""
    from embedops.usecases import rag

    docs = [d.model_dump() for d in body.documents]
    return rag.add_documents(request.app.state.ctx.api, name, docs, body.chunk_tokens,
                             body.overlap)


@router.post("/collections/{name}/context", summary="RAG context for a question")
def context(request: Request, name: str, body: ContextRequest, _: Any = READ) -> Any:
    """Passages that fit in a token budget, deduplicated and diversified, with citations."""
    from embedops.usecases import rag

    found = rag.context(request.app.state.ctx.api, name, body.query, body.budget,
                        body.candidates, body.diversity, body.mode, body.filters)
    return found.to_dict()
