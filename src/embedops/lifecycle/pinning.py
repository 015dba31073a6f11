"""Searching across versions, only through an explicit alignment map.

A query embedded with a version the collection does not hold is refused (``VersionMismatch``)
by the facade. ``aligned_search`` is the one exception, and only on request: the caller names a
map fitted for exactly that pair (``embedops compare A B --save-map PATH``), the query vector is
mapped into the index's space, and the response names the index's version.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from embedops.engine import Embedops
from embedops.engine.checks import check_k, check_query
from embedops.errors import VersionMismatch
from embedops.search.models import Hit, SearchResponse


def aligned_search(api: Embedops, collection: str, query: str, query_version: str,
                   alignment: Any, k: int = 10) -> Any:
    """Dense search of ``collection`` for ``query`` embedded with ``query_version`` and mapped
    by ``alignment`` (an ``AlignmentMap`` or the path of a saved one) into the space of the
    version the map targets, which the collection must hold. Returns a SearchResponse."""
    from embedops.monitor.compare import AlignmentMap

    started = time.perf_counter()
    query, k = check_query(query), check_k(k)
    amap = alignment if isinstance(alignment, AlignmentMap) else AlignmentMap.load(
        Path(alignment))
    source = api.models.resolve(query_version).ref
    info = api.collections.info(collection)
    held = [v for v in (info.model_version, info.candidate_version) if v]
    if amap.target not in held:
        raise VersionMismatch(
            f"the map targets {amap.target} but '{collection}' holds {' and '.join(held)}",
            "fit a map from the query's version to one the collection holds",
        )
    qvec = api.models.encode_queries([query], source)
    mapped = amap.apply(qvec, source)[0]
    pairs = api.search_vector(collection, amap.target, mapped, k)
    items = {it.id: it for it in api.get_items(collection, [i for i, _ in pairs])}
    hits = [Hit(id=i, score=float(s), text=items[i].text, metadata=dict(items[i].metadata),
                model_version=amap.target) for i, s in pairs if i in items]
    took = round((time.perf_counter() - started) * 1000, 3)
    return SearchResponse(hits=hits, model_version=amap.target, mode="dense", took_ms=took)
