"""The error hierarchy.

Every error says what was wrong and what to do about it, and carries the HTTP status that the
API answers with, so the CLI and the server report the same failure the same way.
"""

from __future__ import annotations


class EmbedopsError(Exception):
    """Base class of every error embedops raises on purpose.

    ``message`` says what was wrong (both sides of a mismatch), ``hint`` what to do.
    """

    http_status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def to_dict(self) -> dict[str, str]:
        """The JSON body the API returns: ``{"code", "message"}`` (hint folded into message)."""
        return {"code": self.code, "message": str(self)}


# --- 4xx: the caller can fix it ------------------------------------------------------------
class InvalidInput(EmbedopsError):
    """A value the caller passed is malformed or out of range."""

    http_status = 422
    code = "invalid_input"


class CorpusError(InvalidInput):
    """A training corpus is missing, empty, or not decodable."""

    code = "bad_corpus"


class FormatError(InvalidInput):
    """A vector file or data file does not match its declared format."""

    code = "bad_format"


class LimitExceeded(EmbedopsError):
    """A request is larger than a configured limit (batch size, text length, body size, k)."""

    http_status = 413
    code = "limit_exceeded"


class Unauthorized(EmbedopsError):
    """No API key, or an unknown or revoked one."""

    http_status = 401
    code = "unauthorized"


class Forbidden(EmbedopsError):
    """The API key is valid but its role does not allow this action."""

    http_status = 403
    code = "forbidden"


class NotFound(EmbedopsError):
    """Something named does not exist."""

    http_status = 404
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class CollectionNotFound(NotFound):
    code = "collection_not_found"


class OutOfVocabulary(NotFound):
    """A word is not in a static model's vocabulary and the model has no subword vectors."""

    code = "out_of_vocabulary"

    def __init__(self, word: str, model: str, suggestions: list[str] | None = None) -> None:
        self.word = word
        self.suggestions = list(suggestions or [])
        hint = (
            f"close in-vocabulary spellings: {', '.join(self.suggestions)}"
            if self.suggestions
            else "use a fastText model, which builds vectors for unseen words from subwords"
        )
        super().__init__(f"'{word}' is not in the vocabulary of {model}", hint)


class Conflict(EmbedopsError):
    """The request is valid but clashes with what is stored."""

    http_status = 409
    code = "conflict"


class AlreadyExists(Conflict):
    code = "already_exists"


class FingerprintMismatch(Conflict):
    """Two sides were tokenized differently (their TokenizerSpec fingerprints differ)."""

    code = "tokenizer_mismatch"


class DimensionMismatch(Conflict):
    """Vectors of different dimensions or model versions would be compared."""

    code = "dimension_mismatch"


class VersionMismatch(Conflict):
    """Vectors of different model versions would be compared without an alignment map."""

    code = "version_mismatch"


# --- 5xx: the stored state is at fault ----------------------------------------------------
class IntegrityError(EmbedopsError):
    """A stored artifact fails its checksum or is structurally broken."""

    http_status = 500
    code = "integrity_error"


class Unavailable(EmbedopsError):
    """Not ready yet (no index built, warm-up not finished)."""

    http_status = 503
    code = "unavailable"


class DependencyMissing(EmbedopsError):
    """An optional dependency is not installed."""

    http_status = 501
    code = "dependency_missing"

    def __init__(self, package: str, feature: str) -> None:
        super().__init__(
            f"{feature} needs the '{package}' package, which is not installed",
            "pip install 'embedops[transformers]'",
        )


class EncryptionKeyError(EmbedopsError):
    """An encrypted collection cannot be read: no key configured, or not the key it was written
    with (the AES-GCM authentication tag fails). Never carries the key itself."""

    http_status = 500
    code = "encryption_key"
