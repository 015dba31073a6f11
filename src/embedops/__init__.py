"""embedops: word and text embeddings in production.

The pipeline, one package per stage: ``text`` → ``models``/``train`` → ``vectors`` → ``store`` →
``index`` → ``search`` → ``serve``, with ``evaluate``, ``monitor`` and ``lifecycle`` closing the
loop. See DESIGN.md for the architecture.
"""

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # ``from embedops import Embedops`` without importing the engine for ``embedops --help``.
    if name == "Embedops":
        from embedops.engine import Embedops

        return Embedops
    raise AttributeError(f"module 'embedops' has no attribute {name!r}")
