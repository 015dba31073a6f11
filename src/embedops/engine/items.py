"""The write rule, in one place: which model versions a write embeds, and the three paths that
write (upsert, ingest of a file, backfill of one version).

Every write embeds its new or changed texts once per *write version* of the collection:
the active version, the rollout candidate (dual write during a rollout) and the two-stage cheap
model. Upsert and ingest embed all of them in one pass before the batch is committed, so an item
is never stored without a vector any search mode needs. Backfill fills in one version's missing
vectors (a new candidate, a new cheap model), resumably and rate-limited when asked.

Ingest and backfill take an optional ``executor`` (``engine.executors``: local, or a Ray
cluster) that does the embedding; the writes stay here, window by window (``engine.batch``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embedops.config import Workspace
from embedops.engine.checks import as_items, check_model_match
from embedops.engine.models import ModelHub
from embedops.errors import InvalidInput, NotFound
from embedops.progress import progress_bar
from embedops.search.twostage import TwoStageConfig
from embedops.store.catalog import Catalog
from embedops.store.models import CollectionInfo, IngestReport

if TYPE_CHECKING:
    from embedops.engine.executors import Executor

Progress = Callable[[int, int], None]


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up (``rate`` None: unlimited)."""

    def __init__(self, rate: float | None, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate is not None and rate <= 0:
            raise InvalidInput(f"the backfill rate must be positive, got {rate}",
                               "write e.g. --rate 200/s, or leave it out for no limit")
        self.rate = rate
        self.burst = float(burst if burst is not None else (rate or 0.0))
        self._clock, self._sleep = clock, sleep
        self._tokens = self.burst
        self._last = clock()

    def take(self, n: int) -> float:
        """Wait until ``n`` tokens are available and spend them; returns seconds waited.
        ``n`` above the burst is allowed: the debt is paid by waiting."""
        if self.rate is None:
            return 0.0
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= n
        if self._tokens >= 0:
            return 0.0
        wait = -self._tokens / self.rate
        self._sleep(wait)
        return wait


def parse_rate(text: str | float | None) -> float | None:
    """``"200/s"``, ``"200"`` or ``200`` → 200.0 items per second; None or ``""`` → None."""
    if text is None or text == "":
        return None
    raw = str(text).strip().lower()
    for suffix in ("/s", "/sec", "/second"):
        if raw.endswith(suffix):
            raw = raw[: -len(suffix)]
            break
    try:
        rate = float(raw)
    except ValueError:
        raise InvalidInput(f"cannot read the rate {text!r}",
                           "write items per second, e.g. 200/s") from None
    if not rate > 0:
        raise InvalidInput(f"the rate must be positive, got {text!r}", "write e.g. 200/s")
    return rate


class Writer:
    """Upsert, ingest and backfill of one workspace, all under the one write rule."""

    def __init__(self, workspace: Workspace, catalog: Catalog, hub: ModelHub) -> None:
        self.workspace, self.catalog, self.hub = workspace, catalog, hub

    def two_stage(self, collection: str) -> TwoStageConfig:
        """The two-stage settings of ``collection`` (defaults when none were configured)."""
        return TwoStageConfig.load(self.workspace.collection_dir(collection))

    def versions(self, collection: str, info: CollectionInfo | None = None) -> list[str]:
        """The write rule: the model versions every write to ``collection`` embeds with, in
        order: active, rollout candidate, two-stage cheap model (each once). ``info``: the
        collection as already read (one read, so a concurrent promote cannot split it)."""
        info = info or self.catalog.get_collection(collection)
        cheap = self.two_stage(collection).cheap_model
        refs = [info.model_version, info.candidate_version]
        if cheap:
            refs.append(self.hub.resolve(cheap).ref)
        return list(dict.fromkeys(r for r in refs if r))

    def embed_for_write(self, collection: str) -> Callable[[list[str]], dict[str, np.ndarray]]:
        """A function that embeds a batch of texts under every write version of
        ``collection`` (checked against the collection once, here)."""
        info = self.catalog.get_collection(collection)
        versions = self.versions(collection, info)
        active = self.hub.resolve(versions[0])
        check_model_match(f"collection '{collection}'",
                          {"model_version": info.model_version, "dim": info.dim},
                          active.ref, active.dim, active.tokenizer_fingerprint,
                          "recreate the collection for this model, or roll the model out")
        return lambda texts: {v: self.hub.embed(texts, v) for v in versions}

    def upsert(self, collection: str, items: Sequence[Any], source: str = "api",
               vectors: Any = None) -> dict[str, int]:
        """Add or replace items; only new or changed ones (content hash) are embedded.
        ``vectors`` (rows aligned with ``items``) are the items' vectors under the active
        version, computed elsewhere: they are stored as given and only the other write
        versions are embedded."""
        batch = as_items(items)
        given = None if vectors is None else self._given(collection, vectors, len(batch))
        changed = self.catalog.plan_upsert(collection, batch)
        if changed:
            texts = [it.text for it in changed]
            if given is None:
                stored = self.embed_for_write(collection)(texts)
            else:
                active, *others = self.versions(collection)
                rows = {it.id: i for i, it in enumerate(batch)}
                stored = {active: given[[rows[it.id] for it in changed]],
                          **{v: self.hub.embed(texts, v) for v in others}}
            self.catalog.upsert(collection, changed, stored, source=source)
        return {"received": len(batch), "written": len(changed),
                "unchanged": len(batch) - len(changed)}

    def _given(self, collection: str, vectors: Any, n: int) -> np.ndarray:
        """Caller-computed vectors checked: ``n`` finite rows of the collection's dimension."""
        dim = self.catalog.get_collection(collection).dim
        try:
            array = np.asarray(vectors, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InvalidInput("vectors must be an array of numbers, one row per item") from exc
        if array.shape != (n, dim):
            raise InvalidInput(
                f"vectors have shape {array.shape}; {n} items of collection '{collection}' "
                f"need ({n}, {dim})", "pass one row of the collection's dimension per item")
        if not np.isfinite(array).all():
            raise InvalidInput("vectors hold NaN or infinite values", "pass finite numbers")
        return array

    def ingest(self, collection: str, path: str | Path, executor: Executor | None = None,
               **options: Any) -> IngestReport:
        """Ingest a file (see ``embedops.store.ingest.ingest`` for the options); with an
        ``executor`` the embedding runs there (``engine.batch.ingest``)."""
        from embedops.store.ingest import ingest

        path = Path(path)
        if not path.is_file():
            raise NotFound(f"no file at {path.name!r} (looked in {path.parent})",
                           "check the path; ingest reads JSONL, CSV/TSV, Parquet or text files")
        embed = self.embed_for_write(collection)
        if executor is not None:
            from embedops.engine import batch

            return batch.ingest(self.catalog, self.hub, executor, self.versions(collection),
                                collection, path, **options)
        return ingest(self.catalog, collection, path, embed, **options)

    def backfill(
        self, collection: str, version: str, rate: float | None = None, batch: int = 256,
        on_progress: Progress | None = None, stop: threading.Event | None = None,
        quiet: bool | None = True, executor: Executor | None = None,
    ) -> tuple[int, int]:
        """Embed the items of ``collection`` lacking a ``version`` vector; ``(done, total)``;
        with an ``executor`` the embedding runs there (``engine.batch.backfill``).

        Resumable by construction: the work list is always the catalog's ``missing_vectors``,
        so a restart continues where the last committed batch ended. ``rate`` caps items per
        second (a token bucket) so a backfill next to a serving process leaves it CPU.
        ``done`` is less than ``total`` only when ``stop`` was set."""
        ref = self.hub.resolve(version).ref
        bucket = TokenBucket(rate, burst=max(rate or 0, 1))
        size = max(1, min(batch, int(rate) if rate else batch))
        if executor is not None:
            from embedops.engine import batch as batches

            return batches.backfill(self.catalog, self.hub, executor, collection, ref,
                                    bucket.take, size, on_progress, stop, quiet)
        total, missing = self._todo(collection, ref)
        done = total - len(missing)
        with progress_bar(f"backfill {collection} → {ref}", total=total, unit="items",
                          quiet=quiet) as task:
            task.advance(done)
            while missing and not (stop and stop.is_set()):
                for start in range(0, len(missing), size):
                    if stop and stop.is_set():
                        break
                    chunk = missing[start:start + size]
                    bucket.take(len(chunk))
                    self._fill(collection, ref, chunk)
                    done += len(chunk)
                    task.advance(len(chunk))
                    if on_progress:
                        on_progress(done, total)
                # Items written while this pass ran without the new version's vector (an
                # upsert that started before the version became a write version) are
                # picked up by the next pass.
                total, missing = self._todo(collection, ref)
                done = total - len(missing)
        return done, total

    def _todo(self, collection: str, ref: str) -> tuple[int, list[str]]:
        total = int(self.catalog.get_collection(collection).item_count)
        return total, self.catalog.missing_vectors(collection, ref)

    def _fill(self, collection: str, ref: str, ids: list[str]) -> None:
        items = self.catalog.get_items(collection, ids)
        if items:
            vectors = self.hub.embed([it.text for it in items], ref)
            self.catalog.put_vectors(collection, ref, [it.id for it in items], vectors)
