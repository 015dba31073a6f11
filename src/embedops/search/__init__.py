"""Search: dense kNN with filters, lexical BM25, hybrid RRF and two-stage retrieval.

The facade ``embedops.api.Embedops.search`` puts these together; the pieces are usable alone.
"""

from embedops.search.dense import check_k, dense_search, exact_search
from embedops.search.filters import Filter, compile_filters, parse_cli_filters
from embedops.search.hybrid import hybrid_fuse, rrf
from embedops.search.lexical import LexicalConfig, LexicalIndex
from embedops.search.models import MAX_K, MODES, Hit, SearchResponse
from embedops.search.served import ServedIndex
from embedops.search.twostage import TwoStageConfig, two_stage_search
from embedops.search.view import CollectionView

__all__ = [
    "MAX_K",
    "MODES",
    "CollectionView",
    "Filter",
    "Hit",
    "LexicalConfig",
    "LexicalIndex",
    "SearchResponse",
    "ServedIndex",
    "TwoStageConfig",
    "check_k",
    "compile_filters",
    "dense_search",
    "exact_search",
    "hybrid_fuse",
    "parse_cli_filters",
    "rrf",
    "two_stage_search",
]
