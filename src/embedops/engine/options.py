"""The names a caller needs to call the engine: settings types, accepted spellings, defaults,
and the types the engine answers with.

Shells import these from here rather than from the stage that defines them, so that what a
surface may pass to the engine is listed in one place.
"""

from embedops.engine.items import parse_rate
from embedops.models.formats import FORMATS as VECTOR_FORMATS
from embedops.models.registry import ModelVersion
from embedops.search.filters import parse_cli_filters
from embedops.search.models import DEFAULT_HYBRID_WEIGHT, MODES, Hit, SearchResponse
from embedops.store.crypto import generate_key, parse_key
from embedops.store.models import METRICS, CollectionInfo, IngestReport, Item
from embedops.store.readers import FORMATS as INGEST_FORMATS
from embedops.store.readers import TEXT_IDS
from embedops.train.distill import DistillConfig
from embedops.train.finetune import FinetuneConfig
from embedops.train.word2vec import TrainConfig, TrainResult

__all__ = [
    "DEFAULT_HYBRID_WEIGHT", "INGEST_FORMATS", "METRICS", "MODES", "TEXT_IDS", "VECTOR_FORMATS",
    "CollectionInfo", "DistillConfig", "FinetuneConfig", "Hit", "IngestReport", "Item",
    "ModelVersion", "SearchResponse", "TrainConfig", "TrainResult", "generate_key",
    "parse_cli_filters", "parse_key", "parse_rate",
]
