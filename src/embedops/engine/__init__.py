"""The engine: the one typed facade of a workspace (see ``Embedops``).

Shells (``cli/``, ``serve/``) and the loop (``monitor/``, ``lifecycle/``) call the engine and
nothing below it. The settings types a caller needs to call it are re-exported here.
"""

from embedops.engine.facade import Embedops

__all__ = ["Embedops"]
