"""Kept for ``from embedops.api import Embedops``: the facade lives in ``embedops.engine``."""

from embedops.engine import Embedops

__all__ = ["Embedops"]
