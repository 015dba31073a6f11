"""The HTTP service: ``create_app(settings)`` in ``embedops.serve.app``, run by ``embedops serve``.

Importing this package is cheap; FastAPI and uvicorn load with ``app`` and ``server``.
"""
