"""Where the embedding of batch work (ingest, backfill) runs: in this process, or on a Ray
cluster. The driver (this process) always reads, plans and writes; an executor only turns the
texts of planned *windows* into vectors and hands them back, in window order, so every write
still goes through the engine's one write rule (``engine/items.py``) and the catalog's
transactions.

* ``LocalExecutor`` (the default) embeds each window with the engine's cached encoders.
* ``RayExecutor`` runs Ray Data over the planned windows: each window's texts become one Arrow
  block in Ray's object store, ``map_batches`` hands each block whole to one of a pool of
  actors that each load the model versions once (the model files travel through the object
  store, so workers need no shared disk); the encoder sorts a window's texts by length and
  batches them (length bucketing) exactly as in process, so the vectors are the ones a local
  ingest stores; they stream back to the driver in order. ``address="local"`` starts an
  in-process cluster; anything else (``auto``, ``ray://head:10001``, ``head:6379``) connects
  to one.

Resumable by construction: the driver commits window by window, and a re-run plans against the
catalog, so a killed driver or a lost worker, run again, stores every item exactly once. Ray is
imported only inside ``RayExecutor``'s methods (``pip install 'embedops[ray]'``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from embedops.config import Workspace
from embedops.engine.models import ModelHub
from embedops.errors import DependencyMissing, InvalidInput, Unavailable

#: Rows planned ahead for one Ray Data run (bounds the driver's and the object store's memory).
CHUNK_ROWS = 256 * 1024
_VEC = "vec:"


@dataclass
class Window:
    """One planned unit of work, committed whole by the driver: ``texts`` to embed (aligned
    with ``ids``), ``extra`` columns the driver needs to write them (aligned too), and
    ``deletes`` to apply first."""

    key: int
    ids: list[str]
    texts: list[str]
    extra: dict[str, list[Any]] = field(default_factory=dict)
    deletes: list[str] = field(default_factory=list)
    read: int = 0  # records this window covers (progress)


Embedded = tuple[Window, dict[str, np.ndarray]]


class Executor(Protocol):
    """Embeds planned windows under model versions; yields ``(window, {version: vectors})`` in
    window order (every window, including those with nothing to embed)."""

    name: str

    def embed(self, hub: ModelHub, versions: Sequence[str],
              windows: Iterable[Window]) -> Iterator[Embedded]:
        """The vectors of every window's texts under every version, window by window."""
        ...

    def close(self) -> None:
        """Release what the executor started (a local Ray cluster)."""
        ...


def _empty(hub: ModelHub, versions: Sequence[str]) -> dict[str, np.ndarray]:
    return {v: np.zeros((0, hub.resolve(v).dim), np.float32) for v in versions}


class LocalExecutor:
    """Embeds in this process with the engine's cached encoders (the default)."""

    name = "local"

    def embed(self, hub: ModelHub, versions: Sequence[str],
              windows: Iterable[Window]) -> Iterator[Embedded]:
        """Each window's texts under each version, as the windows come."""
        for window in windows:
            if window.texts:
                yield window, {v: hub.embed(window.texts, v) for v in versions}
            else:
                yield window, _empty(hub, versions)

    def close(self) -> None:
        """Nothing to release."""


class RayExecutor:
    """Embeds on a Ray cluster with Ray Data (see the module docstring).

    ``workers`` actors (default: one per CPU of the cluster, ``cpus_per_worker`` each) embed
    one window a call."""

    name = "ray"

    def __init__(self, address: str = "local", workers: int | None = None,
                 cpus_per_worker: float = 1.0) -> None:
        if workers is not None and (isinstance(workers, bool) or workers < 1):
            raise InvalidInput(f"Ray workers must be a positive integer, got {workers!r}")
        if not 0 < cpus_per_worker <= 256:
            raise InvalidInput(f"CPUs per Ray worker must be in (0, 256], got {cpus_per_worker}")
        self.address = address or "local"
        self.workers, self.cpus = workers, float(cpus_per_worker)
        self._started = False

    def _ray(self) -> Any:
        """The ``ray`` module, connected (a local cluster started when ``address`` is local)."""
        try:
            import ray
        except ImportError as exc:
            raise DependencyMissing("ray", "--ray (pip install 'embedops[ray]')") from exc
        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                       "configure_logging": False}
            try:
                if self.address == "local":
                    ray.init(**options)
                else:
                    ray.init(address=self.address, **options)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise Unavailable(f"cannot reach the Ray cluster at {self.address!r}: {exc}",
                                  "start it (ray start --head) or pass --ray local") from exc
            self._started = True
        return ray

    def _pool_size(self, ray: Any) -> int:
        if self.workers is not None:
            return self.workers
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        return max(1, int(cpus // self.cpus))

    def embed(self, hub: ModelHub, versions: Sequence[str],
              windows: Iterable[Window]) -> Iterator[Embedded]:
        """Plans up to ``CHUNK_ROWS`` rows of windows into blocks in the object store, streams
        their vectors back through an actor pool window by window (empty windows in their
        place), and goes on with the next chunk (planned after this one is written)."""
        ray = self._ray()
        chunk: list[Window] = []
        rows = 0
        for window in windows:
            chunk.append(window)
            rows += len(window.texts)
            if rows >= CHUNK_ROWS:
                yield from self._run(ray, hub, versions, chunk)
                chunk, rows = [], 0
        if chunk:
            yield from self._run(ray, hub, versions, chunk)

    def _run(self, ray: Any, hub: ModelHub, versions: Sequence[str],
             planned: list[Window]) -> Iterator[Embedded]:
        from embedops.engine.ray_data import run_blocks, to_blocks

        refs = to_blocks(ray, planned)
        if not refs:
            for window in planned:
                yield window, _empty(hub, versions)
            return
        rows = run_blocks(ray, refs, model_files(hub, versions), list(versions),
                          self._pool_size(ray), self.cpus)
        yield from _reassemble(planned, rows, versions, hub)

    def close(self) -> None:
        """Shut down the local cluster this executor started (not one it joined)."""
        if self._started:
            import ray

            ray.shutdown()
            self._started = False


def _reassemble(planned: list[Window], batches: Iterator[dict[str, np.ndarray]],
                versions: Sequence[str], hub: ModelHub) -> Iterator[Embedded]:
    """Windows with their vectors, in key order, as soon as each (and those before it) is
    complete; a window's rows come back in length order and are put back in its own."""
    waiting: dict[int, list[tuple[int, dict[str, np.ndarray]]]] = {}
    counts = {w.key: len(w.ids) for w in planned}
    position = 0

    def ready() -> Iterator[Embedded]:
        nonlocal position
        while position < len(planned):
            window = planned[position]
            got = waiting.get(window.key, [])
            if sum(len(p[1]["pos"]) for p in got) < counts[window.key]:
                return
            position += 1
            if not counts[window.key]:
                yield window, _empty(hub, versions)
                continue
            yield window, _vectors_of(waiting.pop(window.key), versions, counts[window.key])

    for batch in batches:
        keys = np.asarray(batch["window"])
        for key in np.unique(keys):
            mask = keys == key
            part = {name: np.asarray(values)[mask] for name, values in batch.items()
                    if name == "pos" or name.startswith(_VEC)}
            waiting.setdefault(int(key), []).append((int(key), part))
        yield from ready()
    yield from ready()
    if position < len(planned):
        raise Unavailable(f"the Ray job returned {position} of {len(planned)} windows",
                          "run the same command again: it resumes where the last window ended")


def _vectors_of(parts: list[tuple[int, dict[str, np.ndarray]]], versions: Sequence[str],
                n: int) -> dict[str, np.ndarray]:
    pos = np.concatenate([p[1]["pos"] for p in parts]).astype(np.int64)
    order = np.argsort(pos)
    if len(pos) != n or not np.array_equal(pos[order], np.arange(n)):
        raise Unavailable("the Ray job returned a window's rows twice or not at all",
                          "run the same command again: it resumes where the last window ended")
    out = {}
    for v in versions:
        stacked = np.concatenate([np.stack(list(p[1][_VEC + v])) for p in parts])
        out[v] = np.ascontiguousarray(stacked[order], dtype=np.float32)
    return out


def model_files(hub: ModelHub, versions: Sequence[str]) -> dict[str, bytes]:
    """Every file of the model versions, by path relative to the models folder (what a Ray
    actor writes into a private workspace to load them)."""
    base = Path(hub.registry.root)
    out: dict[str, bytes] = {}
    for ref in dict.fromkeys(versions):
        for path in sorted(hub.resolve(ref).path.rglob("*")):
            if path.is_file():
                out[str(path.relative_to(base))] = path.read_bytes()
    return out


def load_models(files: dict[str, bytes], versions: Sequence[str]) -> dict[str, Any]:
    """The encoders of ``versions`` from ``model_files`` output, in a private workspace."""
    from embedops.models.loader import load_encoder
    from embedops.models.registry import Registry

    workspace = Workspace(Path(tempfile.mkdtemp(prefix="embedops-ray-models-"))).ensure()
    for rel, data in files.items():
        target = workspace.models_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    registry = Registry(workspace)
    return {v: load_encoder(registry.get(v), registry) for v in versions}


@contextmanager
def batch_executor(ray: bool, address: str | None = None, workers: int | None = None
                   ) -> Iterator[Executor | None]:
    """What the shells' ``--ray`` options select: None (embed in this process) without
    ``ray``, else a RayExecutor on ``address`` (default ``$RAY_ADDRESS``, else a local
    cluster), shut down afterwards if it started one."""
    if not ray:
        if address or workers:
            raise InvalidInput("--ray-address and --ray-workers need --ray")
        yield None
        return
    executor = RayExecutor(address or os.environ.get("RAY_ADDRESS") or "local", workers)
    try:
        yield executor
    finally:
        executor.close()
