"""What teams build on embeddings, one loop-layer module per feature over ``engine.Embedops``:
``classify``, ``recommend``, ``cluster``, ``dedup``, ``mapping``, ``expand``, ``autocomplete``
and ``rag``.

Every module calls only the engine's public methods; its artefacts (classifiers, maps) live
under ``Workspace.usecases_dir`` as versioned folders (``manifest.json`` + safetensors).
"""
