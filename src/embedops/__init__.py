"""embedops: word and text embeddings in production.

The pipeline, one package per stage: ``text`` → ``models``/``train`` → ``vectors`` → ``store`` →
``index`` → ``search`` → ``serve``, with ``evaluate``, ``monitor`` and ``lifecycle`` closing the
loop. See DESIGN.md for the architecture.
"""

__version__ = "0.1.0"
