"""The Ray Data side of ``RayExecutor``: planned windows as Arrow blocks in the object store (one
window a block, one block a call), an actor that loads the model versions once, and the
streamed results.

A window reaches the encoder whole, as in process: the encoder sorts its texts by length and
batches them (length bucketing), and batch composition is what a local ingest gets, so vectors
are identical even for dynamically quantized (int8) transformers, whose outputs depend on
what else is in the batch.

Only ``RayExecutor`` imports this module, after ``ray`` itself imported fine.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from embedops.engine.executors import _VEC, Window, load_models


def to_blocks(ray: Any, windows: Sequence[Window]) -> list[Any]:
    """Object refs of one Arrow table (``window``, ``pos``, ``text``) per window with texts."""
    import pyarrow as pa

    refs: list[Any] = []
    for window in windows:
        if not window.texts:
            continue
        n = len(window.texts)
        table = pa.table({"window": np.full(n, window.key, np.int64),
                          "pos": np.arange(n, dtype=np.int64),
                          "text": pa.array(window.texts, pa.large_string())})
        refs.append(ray.put(table))
    return refs


class Embedder:
    """A Ray Data actor: loads the model versions once, then embeds window after window."""

    def __init__(self, files: dict[str, bytes], versions: list[str]) -> None:
        self.versions = list(versions)
        self.encoders = load_models(files, self.versions)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``window`` and ``pos`` of each row, and a ``vec:<version>`` column per version."""
        texts = [str(t) for t in batch["text"]]
        out = {"window": np.asarray(batch["window"]), "pos": np.asarray(batch["pos"])}
        for version in self.versions:
            out[_VEC + version] = np.asarray(self.encoders[version].encode(texts), np.float32)
        return out


def run_blocks(ray: Any, refs: list[Any], files: dict[str, bytes], versions: list[str],
               workers: int, cpus: float) -> Iterator[dict[str, np.ndarray]]:
    """Stream the embedded blocks back, in block order (``preserve_order``); each block is one
    actor call (``batch_size=None``)."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    dataset = ray.data.from_arrow_refs(refs).map_batches(
        Embedder, fn_constructor_args=(files, versions),
        compute=ray.data.ActorPoolStrategy(size=workers), batch_size=None,
        num_cpus=cpus, batch_format="numpy")
    yield from dataset.iter_batches(batch_size=None, batch_format="numpy")
