"""Ingest and backfill through an executor (``engine.executors``): the driver plans windows,
the executor embeds them (possibly on a Ray cluster, possibly ahead of the writes), the driver
writes each window in one transaction, in order.

The ingest keeps ``store.ingest``'s meaning exactly (same readers, same report, duplicates
last-wins, deletes, ``delete_missing``), with one thing more: because windows are planned before
the ones ahead of them are written, the planner remembers what earlier windows will write (the
content of each id, or its delete), so an item is compared with what the catalog *will* hold,
and a re-run after a crash only embeds what is left.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedops.engine.executors import Executor, Window
from embedops.engine.models import ModelHub
from embedops.errors import EmbedopsError, FormatError, InvalidInput
from embedops.progress import progress_bar
from embedops.store.catalog import Catalog
from embedops.store.ingest import MAX_BATCH
from embedops.store.models import IngestReport, ItemIn
from embedops.store.readers import BadLine, ReadOptions, Record, count_records, detect_format
from embedops.store.readers import read_records as _read_records

_DELETED = b"deleted"
Progress = Callable[[int, int], None]


@dataclass
class _Plan:
    catalog: Catalog
    collection: str
    report: IngestReport
    seen: set[str] = field(default_factory=set)
    ahead: dict[str, bytes] = field(default_factory=dict)  # id -> what a planned window writes


def _digest(item: ItemIn) -> bytes:
    return hashlib.sha256(item.content_bytes()).digest()


def ingest(catalog: Catalog, hub: ModelHub, executor: Executor, versions: list[str],
           collection: str, path: str | Path, *, id_field: str = "id", text_field: str = "text",
           batch_size: int = 256, quiet: bool | None = None, fmt: str | None = None,
           delete_field: str | None = None, delete_missing: bool = False,
           text_ids: str = "line") -> IngestReport:
    """Ingest ``path`` into ``collection``, embedding under ``versions`` with ``executor``
    (options as ``store.ingest.ingest``). Returns the IngestReport."""
    if not 1 <= batch_size <= MAX_BATCH:
        raise InvalidInput(f"batch size must be between 1 and {MAX_BATCH}, got {batch_size}")
    path = Path(path)
    kind = detect_format(path, fmt)
    options = ReadOptions(id_field, text_field, delete_field, text_ids)
    report = IngestReport(run_id=uuid.uuid4().hex[:16])
    source = str(path.resolve())
    plan = _Plan(catalog, collection, report)
    started = time.perf_counter()
    catalog.start_run(collection, report.run_id, source)
    try:
        with progress_bar(f"ingest {collection} ({executor.name})", count_records(path, kind),
                          unit="items", quiet=quiet) as task:
            windows = _windows(plan, _read_records(path, kind, options), batch_size)
            for window, vectors in executor.embed(hub, versions, windows):
                _write(plan, window, vectors, source)
                task.advance(window.read)
        if report.read == 0 and report.failed_lines:
            shown = "; ".join(f"line {n}: {m}" for n, m in report.failed_lines[:3])
            raise FormatError(f"no record of {path.name} could be read ({shown})")
        if delete_missing:
            _delete_missing(plan)
    finally:
        report.seconds = time.perf_counter() - started
        catalog.finish_run(collection, report.run_id, report.to_dict())
    return report


def _windows(plan: _Plan, records: Iterator[Record | BadLine], size: int) -> Iterator[Window]:
    """Windows of up to ``size`` distinct ids, in file order, as ``store.ingest`` batches."""
    pending: dict[str, Record] = {}
    key, read = 0, 0
    for rec in records:
        if isinstance(rec, BadLine):
            plan.report.failed_lines.append((rec.line, rec.message))
            continue
        plan.report.read += 1
        read += 1
        if rec.id in plan.seen:
            plan.report.duplicates += 1
        plan.seen.add(rec.id)
        pending.pop(rec.id, None)  # re-insert so that window order follows the file
        pending[rec.id] = rec
        if len(pending) >= size:
            yield _window(plan, key, list(pending.values()), read)
            pending, key, read = {}, key + 1, 0
    yield _window(plan, key, list(pending.values()), read)


def _window(plan: _Plan, key: int, records: list[Record], read: int) -> Window:
    deletes = [r.id for r in records if r.delete]
    items: list[ItemIn] = []
    lines: list[int] = []
    for rec in records:
        if rec.delete:
            continue
        try:
            items.append(ItemIn(rec.id, rec.text, rec.metadata))
            lines.append(rec.line)
        except EmbedopsError as exc:
            plan.report.failed_lines.append((rec.line, exc.message))
    for item_id in deletes:
        plan.ahead[item_id] = _DELETED
    todo = _todo(plan, items)
    plan.report.unchanged += len(items) - len(todo)
    line_of = {it.id: line for it, line in zip(items, lines, strict=True)}
    extra: dict[str, list[Any]] = {"metadata": [it.metadata for it in todo],
                                   "line": [line_of[it.id] for it in todo]}
    return Window(key, [it.id for it in todo], [it.text for it in todo], extra, deletes, read)


def _todo(plan: _Plan, items: list[ItemIn]) -> list[ItemIn]:
    """The items that must be embedded: changed against the catalog, or against what an
    earlier planned window writes (it may not be committed yet)."""
    fresh = [it for it in items if it.id not in plan.ahead]
    # plan_upsert answers with the items as they will be stored (redacted, when the
    # collection's policy says so): those texts are the ones to embed.
    changed = {it.id: it for it in plan.catalog.plan_upsert(plan.collection, fresh)} \
        if fresh else {}
    items = [changed.get(it.id, it) for it in items]
    todo = []
    for item in items:
        digest = _digest(item)
        if item.id in plan.ahead:
            if plan.ahead[item.id] != digest:
                todo.append(item)
        elif item.id in changed:
            todo.append(item)
        else:
            continue
        plan.ahead[item.id] = digest
    return todo


def _write(plan: _Plan, window: Window, vectors: dict[str, Any], source: str) -> None:
    """One window in the order ``store.ingest`` writes a batch: deletes, then upserts."""
    if window.deletes:
        plan.report.deleted += plan.catalog.delete(plan.collection, window.deletes)
    if not window.ids:
        return
    items = [ItemIn(i, t, m) for i, t, m in
             zip(window.ids, window.texts, window.extra["metadata"], strict=True)]
    plan.catalog.upsert(plan.collection, items, vectors, run_id=plan.report.run_id,
                        source=source, lines=list(window.extra["line"]))
    plan.report.embedded += len(items)


def _delete_missing(plan: _Plan) -> None:
    report = plan.report
    if report.failed_lines:
        report.notes.append(
            f"--delete-missing skipped: {len(report.failed_lines)} line(s) failed, and an "
            "item on a failed line would have been deleted; fix them and run again")
        return
    stale = [i for i in plan.catalog.all_ids(plan.collection) if i not in plan.seen]
    for start in range(0, len(stale), 10_000):
        report.deleted += plan.catalog.delete(plan.collection, stale[start:start + 10_000])


def backfill(catalog: Catalog, hub: ModelHub, executor: Executor, collection: str, ref: str,
             take: Callable[[int], float], size: int, on_progress: Progress | None,
             stop: threading.Event | None, quiet: bool | None) -> tuple[int, int]:
    """``Writer.backfill`` through ``executor``: ``(done, total)``; ``take(n)`` paces the
    writes (the token bucket), ``stop`` ends it after the current window."""
    total = int(catalog.get_collection(collection).item_count)
    missing = catalog.missing_vectors(collection, ref)
    done = total - len(missing)
    with progress_bar(f"backfill {collection} → {ref} ({executor.name})", total=total,
                      unit="items", quiet=quiet) as task:
        task.advance(done)
        while missing and not (stop and stop.is_set()):
            for window, vectors in executor.embed(hub, [ref], _fills(catalog, collection,
                                                                     missing, size, stop)):
                take(len(window.ids))
                catalog.put_vectors(collection, ref, window.ids, vectors[ref])
                done += window.read
                task.advance(window.read)
                if on_progress:
                    on_progress(done, total)
            # items written meanwhile without this version's vector: the next pass
            total = int(catalog.get_collection(collection).item_count)
            missing = catalog.missing_vectors(collection, ref)
            done = total - len(missing)
    return done, total


def _fills(catalog: Catalog, collection: str, missing: list[str], size: int,
           stop: threading.Event | None) -> Iterator[Window]:
    for key, start in enumerate(range(0, len(missing), size)):
        if stop and stop.is_set():
            return
        chunk = missing[start:start + size]
        items = catalog.get_items(collection, chunk)
        yield Window(key, [it.id for it in items], [it.text for it in items], read=len(chunk))
