"""``embedops classify train|predict|show``, ``recommend``, ``cluster``, ``duplicates``,
``map-fit``, ``expand``, ``expanded-search``, ``autocomplete``, ``rag-ingest`` and
``rag-context``: the use cases of ``embedops.usecases`` from the command line (``--json`` for
scripts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from embedops.cli._common import engine, print_json
from embedops.engine.options import parse_cli_filters
from embedops.errors import InvalidInput

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
CollectionArg = Annotated[str, typer.Argument(help="Collection name.")]
FilterOpt = Annotated[list[str] | None, typer.Option(
    "--filter", "-f", help='Metadata filter: field=value, field>=x, field=["a","b"].')]


def register(app: typer.Typer) -> None:
    """Add the ``classify`` group and the ``recommend`` and ``cluster`` commands to ``app``."""
    group = typer.Typer(help="Classifiers on frozen embeddings: train, predict, show.",
                        no_args_is_help=True)
    app.add_typer(group, name="classify")
    group.command("train")(classify_train)
    group.command("predict")(classify_predict)
    group.command("show")(classify_show)
    app.command("recommend")(recommend_cmd)
    app.command("cluster")(cluster_cmd)
    app.command("duplicates")(duplicates_cmd)
    app.command("map-fit")(map_fit_cmd)
    app.command("expand")(expand_cmd)
    app.command("expanded-search")(expanded_search_cmd)
    app.command("autocomplete")(autocomplete_cmd)
    app.command("rag-ingest")(rag_ingest_cmd)
    app.command("rag-context")(rag_context_cmd)


def classify_train(
    collection: CollectionArg,
    name: Annotated[str | None, typer.Option("--name", help="Classifier name (default: the "
                                             "collection's).")] = None,
    label_field: Annotated[str, typer.Option("--label-field",
                                             help="Metadata field with the label.")] = "label",
    labels: Annotated[Path | None, typer.Option(
        "--labels", help='JSONL file of {"id", "label"} rows (instead of --label-field).')
    ] = None,
    c: Annotated[float, typer.Option("--c", help="Inverse regularization strength.")] = 10.0,
    test_size: Annotated[float, typer.Option("--test-size", help="Held-out share.")] = 0.2,
    features: Annotated[str, typer.Option(
        "--features", help="'embedding' (the vectors) or 'embedding+tfidf' (TF-IDF of the "
        "texts beside them: better with many labelled texts; predictions need the texts).")
    ] = "embedding",
    as_json: JsonOpt = False,
) -> None:
    """Train a logistic-regression classifier on the collection's vectors and publish it."""
    from embedops.usecases import classify

    mapping = _read_labels(labels) if labels else None
    with engine() as eo:
        clf = classify.train(eo, collection, label_field, name, mapping, test_size, c,
                             features=features)
    m = clf.manifest
    if as_json:
        print_json(m)
        return
    met = m["metrics"]
    typer.echo(f"{m['ref']} on {m['model_version']}: {len(m['labels'])} labels, accuracy "
               f"{met['accuracy']:.3f}, macro-F1 {met['macro_f1']:.3f} "
               f"({m['test_count']} held out)")


def classify_predict(
    classifier: Annotated[str, typer.Argument(help="Classifier name or name@N.")],
    texts: Annotated[list[str], typer.Argument(help="Texts to classify.")],
    k: Annotated[int, typer.Option("-k", help="Labels per text.")] = 1,
    threshold: Annotated[float, typer.Option(
        "--threshold", help="Abstain below this probability.")] = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Predict labels of texts (embedded with the classifier's own model version)."""
    from embedops.usecases import classify

    with engine() as eo:
        preds = classify.predict_texts(eo, classifier, texts, k, threshold)
    if as_json:
        print_json([{"text": t, **p.to_dict()} for t, p in zip(texts, preds, strict=True)])
        return
    for text, p in zip(texts, preds, strict=True):
        tops = ", ".join(f"{lab} {prob:.2f}" for lab, prob in p.top)
        typer.echo(f"{p.label or '(abstain)'}\t{tops}\t{text[:60]}")


def classify_show(
    classifier: Annotated[str, typer.Argument(help="Classifier name or name@N.")],
    as_json: JsonOpt = False,
) -> None:
    """Show a classifier's manifest (lineage, labels, held-out metrics)."""
    from embedops.usecases import classify

    with engine() as eo:
        m = classify.load(eo, classifier).manifest
    if as_json:
        print_json(m)
        return
    typer.echo(f"{m['ref']} (parent {m['parent']}) on {m['model_version']}, collection "
               f"{m['collection']}: accuracy {m['metrics']['accuracy']:.3f}, macro-F1 "
               f"{m['metrics']['macro_f1']:.3f}")


def recommend_cmd(
    collection: CollectionArg,
    positive: Annotated[list[str], typer.Option("--like", help="An id to find more like "
                                                "(repeatable; id:weight for a weight).")],
    negative: Annotated[list[str] | None, typer.Option("--unlike", help="An id to move away "
                                                       "from (repeatable).")] = None,
    exclude: Annotated[list[str] | None, typer.Option("--exclude",
                                                      help="An id never to return.")] = None,
    k: Annotated[int, typer.Option("-k", help="How many items.")] = 10,
    diversity: Annotated[float, typer.Option("--diversity", help="MMR diversity in [0, 1]."
                                             )] = 0.0,
    filter_: FilterOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """More-like-this: items like the given ones, from the collection's served index."""
    from embedops.usecases import recommend

    history = dict(_weighted(p) for p in positive)
    filters = parse_cli_filters(filter_) if filter_ else None
    with engine() as eo:
        hits = recommend.recommend(eo, collection, history, negative or [], exclude or [], k,
                                   filters, diversity)
    if as_json:
        print_json({"hits": [h.to_dict() for h in hits]})
        return
    for h in hits:
        typer.echo(f"{h.score:.4f}\t{h.id}\t{h.text[:70]}")


def cluster_cmd(
    collection: CollectionArg,
    k: Annotated[list[int] | None, typer.Option("-k", help="k (repeatable: a sweep, best "
                                                "silhouette kept).")] = None,
    label_field: Annotated[str | None, typer.Option(
        "--label-field", help="Metadata field to score NMI/ARI against.")] = None,
    store: Annotated[bool, typer.Option("--store", help="Write assignments into metadata "
                                        "(cluster_<model>_<n>).")] = False,
    method: Annotated[str, typer.Option("--method", help="kmeans, or hdbscan (density-based: "
                                        "clusters found from the data, noise labelled -1).")
                      ] = "kmeans",
    min_cluster_size: Annotated[int, typer.Option("--min-cluster-size",
                                                  help="HDBSCAN: items per cluster at least.")
                                ] = 5,
    filter_: FilterOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cluster a collection (k-means or HDBSCAN); name each cluster by terms and central
    items."""
    from embedops.usecases import cluster

    filters = parse_cli_filters(filter_) if filter_ else None
    with engine() as eo:
        report = cluster.cluster(eo, collection, k or [2, 4, 8, 16], filters, label_field, store,
                                 method=method, min_cluster_size=min_cluster_size)
    if as_json:
        print_json(report.to_dict())
        return
    sil = report.silhouette.get(report.k)
    typer.echo(f"{report.method}: k={report.k}"
               + (f" (silhouette {sil:.3f})" if sil is not None else "")
               + (f", {report.noise} noise items" if report.method == "hdbscan" else "")
               + (f", NMI {report.nmi:.3f}, ARI {report.ari:.3f}" if report.nmi is not None
                  else ""))
    for c in report.clusters:
        typer.echo(f"{c.cluster}\t{c.size}\t{' '.join(c.terms)}\t{','.join(c.central)}")


def duplicates_cmd(
    collection: CollectionArg,
    threshold: Annotated[float, typer.Option("--threshold", help="Cosine at least.")] = 0.9,
    lexical: Annotated[float, typer.Option("--lexical", help="Token Jaccard at least.")] = 0.5,
    filter_: FilterOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Report duplicate and near-duplicate items (found through the ANN index)."""
    from embedops.usecases import dedup

    filters = parse_cli_filters(filter_) if filter_ else None
    with engine() as eo:
        report = dedup.find_duplicates(eo, collection, threshold, lexical, filters=filters)
    if as_json:
        print_json(report.to_dict())
        return
    typer.echo(f"{len(report.pairs)} pairs in {len(report.groups)} groups "
               f"({report.checked} items checked)")
    for group in report.groups:
        typer.echo(f"keep {group[0]}\tduplicates {','.join(group[1:])}")


def map_fit_cmd(
    source: Annotated[str, typer.Argument(help="Source model version.")],
    target: Annotated[str, typer.Argument(help="Target model version.")],
    pairs: Annotated[Path, typer.Argument(help="Seed dictionary: TSV of source<TAB>target.")],
    name: Annotated[str, typer.Option("--name", help="Map name.")] = "map",
    as_json: JsonOpt = False,
) -> None:
    """Fit an orthogonal map between two models' spaces; print held-out precision@1/@10."""
    from embedops.usecases import mapping

    rows = [tuple(line.split("\t")[:2]) for line in
            pairs.read_text(encoding="utf-8").splitlines() if line.count("\t") >= 1]
    with engine() as eo:
        m = mapping.fit(eo, source, target, [(a, b) for a, b in rows], name)
    if as_json:
        print_json(m)
        return
    typer.echo(f"{m['ref']}: {m['source']} -> {m['target']}, p@1 {m['metrics']['p@1']:.3f}, "
               f"p@10 {m['metrics']['p@10']:.3f} ({m['test_pairs']} held-out pairs)")


ModelOpt = Annotated[str | None, typer.Option("--model", help="Static model for the nearest "
                                              "words (default: the collection's).")]
PerTermOpt = Annotated[int, typer.Option("--per-term", help="Neighbours per query word.")]
MaxTermsOpt = Annotated[int, typer.Option("--max-terms", help="Terms added in all.")]
MinSimOpt = Annotated[float, typer.Option("--min-similarity", help="Lowest cosine.")]
WeightOpt = Annotated[float, typer.Option("--weight", help="Weight of an added term x cosine.")]


def expand_cmd(
    query: Annotated[str, typer.Argument(help="The query to expand.")],
    model: ModelOpt = None,
    per_term: PerTermOpt = 3,
    max_terms: MaxTermsOpt = 10,
    min_similarity: MinSimOpt = 0.6,
    weight: WeightOpt = 0.5,
    as_json: JsonOpt = False,
) -> None:
    """Expand a query with the nearest words of a static model (terms and weights listed)."""
    from embedops.usecases import expand

    options = expand.ExpandOptions(model, per_term, max_terms, min_similarity, weight)
    with engine() as eo:
        found = expand.expand(eo, query, options)
    if as_json:
        print_json(found.to_dict())
        return
    for t in found.terms:
        typer.echo(f"{t.weight:.3f}\t{t.term}\t(from {t.source}, cosine {t.similarity:.3f})")


def expanded_search_cmd(
    collection: CollectionArg,
    query: Annotated[str, typer.Argument(help="The query.")],
    k: Annotated[int, typer.Option("-k", help="How many items.")] = 10,
    mode: Annotated[str, typer.Option("--mode", help="lexical or hybrid.")] = "hybrid",
    model: ModelOpt = None,
    per_term: PerTermOpt = 3,
    max_terms: MaxTermsOpt = 10,
    min_similarity: MinSimOpt = 0.6,
    weight: WeightOpt = 0.5,
    filter_: FilterOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Lexical or hybrid search with the query expanded by weighted nearest words."""
    from embedops.usecases import expand

    options = expand.ExpandOptions(model, per_term, max_terms, min_similarity, weight)
    filters = parse_cli_filters(filter_) if filter_ else None
    with engine() as eo:
        found = expand.search(eo, collection, query, k, mode, filters, options)
    if as_json:
        print_json(found.to_dict())
        return
    added = ", ".join(f"{t.term} {t.weight:.2f}" for t in found.expansion.terms)
    typer.echo(f"added: {added or '(nothing)'}")
    for h in found.response.hits:
        typer.echo(f"{h.score:.4f}\t{h.id}\t{h.text[:70]}")


def autocomplete_cmd(
    collection: CollectionArg,
    partial: Annotated[str, typer.Argument(help="What was typed so far.")],
    k: Annotated[int, typer.Option("-k", help="Completions at most.")] = 5,
    record: Annotated[list[str] | None, typer.Option(
        "--record", help="Count a past query first (repeatable).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Complete a partial query from the collection's vocabulary and past queries."""
    from embedops.usecases import autocomplete

    with engine() as eo:
        if record:
            autocomplete.record(eo, collection, record)
        found = autocomplete.complete(eo, collection, partial, k)
    if as_json:
        print_json({"partial": partial, "completions": [c.to_dict() for c in found]})
        return
    for c in found:
        typer.echo(f"{c.score:.3f}\t{c.text}\t({c.source}, {c.count})")


def rag_ingest_cmd(
    collection: CollectionArg,
    paths: Annotated[list[Path], typer.Argument(help="Text files or folders (.txt, .md).")],
    chunk_tokens: Annotated[int, typer.Option("--chunk-tokens",
                                              help="Tokens per chunk at most.")] = 200,
    overlap: Annotated[int | None, typer.Option(
        "--overlap", help="Tokens shared by consecutive chunks (default a fifth of a chunk).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Chunk long text files by the model's tokens into items linked to their file."""
    from embedops.usecases import rag

    with engine() as eo:
        report = rag.ingest_files(eo, collection, paths, chunk_tokens, overlap)
    if as_json:
        print_json(report)
        return
    typer.echo(f"{report['documents']} documents, {report['chunks']} chunks "
               f"({report['written']} written, {report['removed']} old chunks removed)")


def rag_context_cmd(
    collection: CollectionArg,
    query: Annotated[str, typer.Argument(help="The question.")],
    budget: Annotated[int, typer.Option("--budget", help="Tokens of context at most.")] = 512,
    diversity: Annotated[float, typer.Option("--diversity", help="MMR diversity in [0, 1]."
                                             )] = 0.3,
    mode: Annotated[str, typer.Option("--mode", help="dense, lexical or hybrid.")] = "hybrid",
    filter_: FilterOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Passages for a question packed into a token budget, with citations."""
    from embedops.usecases import rag

    filters = parse_cli_filters(filter_) if filter_ else None
    with engine() as eo:
        found = rag.context(eo, collection, query, budget, diversity=diversity, mode=mode,
                            filters=filters)
    if as_json:
        print_json(found.to_dict())
        return
    typer.echo(f"{len(found.passages)} passages, {found.tokens_used}/{found.budget} tokens")
    for p in found.passages:
        typer.echo(f"[{p.citation}] {p.score:.4f} {p.tokens} tokens\t{p.text[:70]}")


def _weighted(raw: str) -> tuple[str, float]:
    ident, sep, weight = raw.rpartition(":")
    if not sep:
        return raw, 1.0
    try:
        return ident, float(weight)
    except ValueError:
        return raw, 1.0


def _read_labels(path: Path) -> dict[str, str]:
    out: dict[str, Any] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            out[str(row["id"])] = str(row["label"])
        except (ValueError, KeyError, TypeError):
            raise InvalidInput(f"{path.name} line {n}: expected {{\"id\", \"label\"}}") from None
    return out
