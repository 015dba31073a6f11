"""Adapters of embedops to the frameworks RAG applications use (optional extras).

``embedops.integrations.langchain`` (``pip install 'embedops[langchain]'``) and
``embedops.integrations.llamaindex`` (``pip install 'embedops[llamaindex]'``): each works over an
in-process ``Embedops`` or a remote ``embedops.client.Client``. Nothing heavy is imported here.
"""
