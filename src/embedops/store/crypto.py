"""Encryption at rest for the catalog: AES-256-GCM, keys from the environment.

The key is 32 bytes, given base64-encoded in ``$EMBEDOPS_KEY`` or in the file named by
``$EMBEDOPS_KEY_FILE`` (base64 text or the 32 raw bytes). Two subkeys are derived from it with
HKDF: one encrypts texts, metadata and vectors; the other keys the HMAC-SHA256 content hashes, so
that hashes used for idempotence reveal nothing about the plain text. Each ciphertext is bound to
its row (collection, item id, field) as associated data, so rows cannot be swapped unnoticed.
Messages never include the key; they name a short key id (an HMAC of a fixed label).

What stays plain: item ids, model version names, timestamps, counts, and lineage (source file
path and line number), because lookups and freshness checks need them without the key. Choose
ids that do not carry secrets.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from embedops.errors import EncryptionKeyError

KEY_ENV = "EMBEDOPS_KEY"
KEY_FILE_ENV = "EMBEDOPS_KEY_FILE"
KEY_BYTES = 32
_NONCE = 12
_FORMAT = b"\x01"
_HINT = (
    f"set {KEY_ENV} to the base64 of 32 random bytes (or {KEY_FILE_ENV} to a file holding it); "
    "'embedops collections keygen' prints a new key"
)


def generate_key() -> str:
    """A new random key, base64-encoded, for ``$EMBEDOPS_KEY``."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def parse_key(raw: bytes, source: str, allow_raw: bool = False) -> bytes:
    """The 32-byte key in ``raw`` (base64, or the raw bytes when ``allow_raw``); errors name
    ``source`` and the decoded length, never the key."""
    text = raw.strip()
    try:
        key = base64.b64decode(text, altchars=b"-_" if b"-" in text or b"_" in text else None,
                               validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) == KEY_BYTES:
        return key
    if allow_raw and len(raw) == KEY_BYTES:
        return raw
    raise EncryptionKeyError(
        f"the key in {source} is not base64 of {KEY_BYTES} bytes "
        f"(it decodes to {len(key)} bytes)",
        _HINT,
    )


def load_key(environ: Mapping[str, str] | None = None) -> bytes | None:
    """The key from ``$EMBEDOPS_KEY`` or ``$EMBEDOPS_KEY_FILE``, or None when neither is set."""
    env = os.environ if environ is None else environ
    if env.get(KEY_ENV):
        return parse_key(env[KEY_ENV].encode(), KEY_ENV)
    if env.get(KEY_FILE_ENV):
        path = Path(env[KEY_FILE_ENV]).expanduser()
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise EncryptionKeyError(
                f"cannot read the key file named by {KEY_FILE_ENV} ({path}): {exc.strerror}",
                _HINT,
            ) from exc
        return parse_key(raw, f"{KEY_FILE_ENV} ({path})", allow_raw=True)
    return None


def _hkdf(key: bytes, label: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(hashes.SHA256(), KEY_BYTES, salt=b"embedops-store-v1", info=label).derive(key)


class Cipher:
    """AES-GCM encryption and HMAC content hashing under subkeys of one master key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise EncryptionKeyError(f"an encryption key must be {KEY_BYTES} bytes, "
                                     f"got {len(key)}", _HINT)
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(_hkdf(key, b"encrypt"))
        self.mac_key = _hkdf(key, b"content-hash")
        self.key_id = hmac.new(_hkdf(key, b"key-id"), b"embedops", hashlib.sha256).hexdigest()[:12]

    def __repr__(self) -> str:
        return f"Cipher(key_id={self.key_id})"

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        """``format byte + nonce + ciphertext-with-tag``; ``aad`` binds it to its row."""
        nonce = secrets.token_bytes(_NONCE)
        return _FORMAT + nonce + self._aead.encrypt(nonce, plaintext, aad)

    def decrypt(self, blob: bytes, aad: bytes, what: str = "a stored value") -> bytes:
        """Inverse of ``encrypt``; a wrong key or altered bytes raise EncryptionKeyError."""
        from cryptography.exceptions import InvalidTag

        if not blob or blob[:1] != _FORMAT or len(blob) < 1 + _NONCE + 16:
            raise EncryptionKeyError(f"{what} is not an embedops ciphertext", "the row is damaged")
        try:
            return self._aead.decrypt(blob[1 : 1 + _NONCE], blob[1 + _NONCE :], aad)
        except InvalidTag as exc:
            raise EncryptionKeyError(
                f"cannot decrypt {what}: the authentication tag does not match "
                f"(wrong key, key id {self.key_id}, or the data was altered)",
                "use the key this collection was written with",
            ) from exc

    @staticmethod
    def ciphertext_len(plain_len: int) -> int:
        """Length of the blob ``encrypt`` returns for ``plain_len`` bytes."""
        return 1 + _NONCE + plain_len + 16
