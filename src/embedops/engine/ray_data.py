"""The Ray Data side of ``RayExecutor``: planned windows as length-sorted Arrow blocks in the
object store, an actor that loads the model versions once, and the streamed results.

Only ``RayExecutor`` imports this module, after ``ray`` itself imported fine.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from embedops.engine.executors import _VEC, Window, load_models


def to_blocks(ray: Any, windows: Sequence[Window], block_windows: int) -> list[Any]:
    """Object refs of Arrow tables (``window``, ``pos``, ``text``), ``block_windows`` windows
    each, rows sorted by text length so that each batch an actor embeds holds texts of similar
    length (length bucketing)."""
    import pyarrow as pa

    refs: list[Any] = []
    todo = [w for w in windows if w.texts]
    for start in range(0, len(todo), block_windows):
        group = todo[start:start + block_windows]
        keys = np.concatenate([np.full(len(w.texts), w.key, np.int64) for w in group])
        pos = np.concatenate([np.arange(len(w.texts), dtype=np.int64) for w in group])
        texts = [t for w in group for t in w.texts]
        order = np.argsort(np.fromiter((len(t) for t in texts), np.int64, len(texts)),
                           kind="stable")
        table = pa.table({"window": keys[order], "pos": pos[order],
                          "text": pa.array([texts[i] for i in order], pa.large_string())})
        refs.append(ray.put(table))
    return refs


class Embedder:
    """A Ray Data actor: loads the model versions once, then embeds batch after batch."""

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
               workers: int, batch_size: int, cpus: float) -> Iterator[dict[str, np.ndarray]]:
    """Stream the embedded blocks back, in block order (``preserve_order``)."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    dataset = ray.data.from_arrow_refs(refs).map_batches(
        Embedder, fn_constructor_args=(files, versions),
        compute=ray.data.ActorPoolStrategy(size=workers), batch_size=batch_size,
        num_cpus=cpus, batch_format="numpy")
    yield from dataset.iter_batches(batch_size=None, batch_format="numpy")
