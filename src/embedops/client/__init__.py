"""A typed Python client of the embedops HTTP API (``embedops serve``).

``Client`` has the method names, return types and error classes of the in-process engine
(``embedops.engine.Embedops``) where the two overlap, so code moves between them by changing
one constructor.
"""

from embedops.client.client import Client
from embedops.client.transport import API_KEY_ENV, RetryPolicy

__all__ = ["API_KEY_ENV", "Client", "RetryPolicy"]
