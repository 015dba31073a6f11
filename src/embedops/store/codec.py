"""How item fields are written to and read from catalog rows: plain, or AES-GCM encrypted.

Plain collections keep texts and metadata as SQLite TEXT (readable with the sqlite3 shell);
encrypted ones keep ciphertext BLOBs bound to (collection, item id, field) and hash content
with HMAC instead of sha256, so nothing of the plain text is stored.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from embedops.errors import IntegrityError
from embedops.store.crypto import Cipher
from embedops.store.models import ItemIn, content_hash


class RowCodec:
    """Encodes one collection's item fields; ``cipher`` is None for plain collections."""

    def __init__(self, collection: str, cipher: Cipher | None) -> None:
        self.collection = collection
        self.cipher = cipher

    def _aad(self, item_id: str, field: str) -> bytes:
        return f"{self.collection}\x00{item_id}\x00{field}".encode()

    def hash(self, item: ItemIn) -> str:
        """Content hash of an item (HMAC-SHA256 when encrypted)."""
        return content_hash(item.content_bytes(), self.cipher.mac_key if self.cipher else None)

    def text_out(self, item_id: str, text: str) -> str | bytes:
        if self.cipher is None:
            return text
        return self.cipher.encrypt(text.encode(), self._aad(item_id, "text"))

    def text_in(self, item_id: str, stored: str | bytes) -> str:
        if self.cipher is None:
            return stored if isinstance(stored, str) else bytes(stored).decode()
        what = f"the text of item {item_id!r} in collection {self.collection!r}"
        return self.cipher.decrypt(_blob(stored), self._aad(item_id, "text"), what).decode()

    def meta_out(self, item_id: str, canonical_json: str) -> str | bytes:
        if self.cipher is None:
            return canonical_json
        return self.cipher.encrypt(canonical_json.encode(), self._aad(item_id, "metadata"))

    def meta_in(self, item_id: str, stored: str | bytes) -> dict[str, Any]:
        if self.cipher is None:
            raw = stored if isinstance(stored, str) else bytes(stored).decode()
        else:
            what = f"the metadata of item {item_id!r} in collection {self.collection!r}"
            raw = self.cipher.decrypt(_blob(stored), self._aad(item_id, "metadata"), what).decode()
        value = json.loads(raw)
        return value if isinstance(value, dict) else {}

    def vector_out(self, item_id: str, version: str, vector: np.ndarray) -> bytes:
        data = np.ascontiguousarray(vector, dtype="<f4").tobytes()
        if self.cipher is None:
            return data
        return self.cipher.encrypt(data, self._aad(item_id, f"vector:{version}"))

    def vector_in(self, item_id: str, version: str, stored: bytes, dim: int) -> np.ndarray:
        data = bytes(stored)
        if self.cipher is not None:
            what = f"the {version} vector of item {item_id!r} in collection {self.collection!r}"
            data = self.cipher.decrypt(data, self._aad(item_id, f"vector:{version}"), what)
        if len(data) != 4 * dim:
            raise IntegrityError(
                f"the {version} vector of item {item_id!r} has {len(data)} bytes, "
                f"expected {4 * dim} (dim {dim})",
                "re-embed the collection with 'embedops ingest' or a backfill",
            )
        return np.frombuffer(data, dtype="<f4")


def _blob(stored: str | bytes) -> bytes:
    """A ciphertext column; TEXT here means a plain row in an encrypted collection."""
    if isinstance(stored, str):
        raise IntegrityError("a row of an encrypted collection holds plain text",
                             "the catalog was edited by hand; restore it from a backup")
    return bytes(stored)
