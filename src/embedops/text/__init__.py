"""Text pipeline: normalize → redact → tokenize, described by a fingerprinted TokenizerSpec."""

from embedops.text.normalize import normalize
from embedops.text.tokenize import TokenizerSpec, tokenize

__all__ = ["TokenizerSpec", "normalize", "tokenize"]
