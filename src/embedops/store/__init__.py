"""The versioned embedding store: a SQLite catalog of collections, items, vectors per model
version and lineage, with optional encryption at rest, and file ingest."""

from embedops.store.catalog import Catalog
from embedops.store.models import CollectionInfo, IngestReport, Item, ItemIn

__all__ = ["Catalog", "CollectionInfo", "IngestReport", "Item", "ItemIn"]
