"""Ingest a file into a collection: read, skip unchanged items, embed the rest in batches, and
commit each batch in one transaction.

Resumable by construction: every batch is committed whole or not at all, and a re-run skips
items whose content hash is already stored, so an ingest killed midway and run again ends with
every item stored exactly once. Duplicate ids in a file: the last occurrence wins (counted).
Deletes: records whose ``delete_field`` is truthy delete their id; ``delete_missing`` deletes
stored items absent from the file (skipped when any line failed, so a bad line never deletes).
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embedops.errors import EmbedopsError, FormatError, InvalidInput
from embedops.progress import progress_bar
from embedops.store.catalog import Catalog
from embedops.store.models import IngestReport, ItemIn
from embedops.store.readers import (
    BadLine,
    ReadOptions,
    Record,
    count_records,
    detect_format,
    read_records,
)

MAX_BATCH = 100_000

# Texts of one batch -> their vectors under every model version the write must store.
WriteEmbed = Callable[[list[str]], Mapping[str, np.ndarray]]


class _Ledger:
    """The ids one ingest has read, kept in SQLite's private temporary database (on disk once
    past its small page cache), so a file of any length is checked for repeated ids in bounded
    memory: a set of 10M ids would hold about a gigabyte."""

    def __init__(self) -> None:
        self._db = sqlite3.connect("")  # "": a private temporary file, removed when closed
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("CREATE TABLE seen (id TEXT PRIMARY KEY) WITHOUT ROWID")

    def add(self, ids: Iterable[str]) -> int:
        """Record ``ids`` (distinct); returns how many had been recorded before."""
        before = self._db.total_changes
        batch = [(i,) for i in ids]
        self._db.executemany("INSERT OR IGNORE INTO seen (id) VALUES (?)", batch)
        return len(batch) - (self._db.total_changes - before)

    def missing(self, ids: list[str]) -> list[str]:
        """Those of ``ids`` never recorded, in their order."""
        out: list[str] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            found = {row[0] for row in self._db.execute(
                f"SELECT id FROM seen WHERE id IN ({marks})", chunk)}
            out.extend(i for i in chunk if i not in found)
        return out

    def close(self) -> None:
        self._db.close()


@dataclass
class _Run:
    catalog: Catalog
    collection: str
    embed: WriteEmbed
    source: str
    report: IngestReport
    seen: _Ledger = field(default_factory=_Ledger)
    pending: dict[str, Record] = field(default_factory=dict)


def ingest(
    catalog: Catalog,
    collection: str,
    path: str | Path,
    embed: WriteEmbed,
    *,
    id_field: str = "id",
    text_field: str = "text",
    batch_size: int = 1024,
    quiet: bool | None = None,
    fmt: str | None = None,
    delete_field: str | None = None,
    delete_missing: bool = False,
    text_ids: str = "line",
) -> IngestReport:
    """Ingest ``path`` into ``collection``; ``embed`` gives each batch's vectors under every
    model version the write stores (the engine's write rule decides which: active, rollout
    candidate, two-stage cheap model). The engine's texts are handed over a commit batch at a
    time; the encoder batches them by length itself."""
    if not 1 <= batch_size <= MAX_BATCH:
        raise InvalidInput(f"batch size must be between 1 and {MAX_BATCH}, got {batch_size}")
    path = Path(path)
    kind = detect_format(path, fmt)
    options = ReadOptions(id_field, text_field, delete_field, text_ids)
    report = IngestReport(run_id=uuid.uuid4().hex[:16])
    run = _Run(catalog, collection, embed, str(path.resolve()), report)
    started = time.perf_counter()
    catalog.start_run(collection, report.run_id, run.source)
    try:
        _read_all(run, path, kind, options, batch_size, quiet)
        if report.read == 0 and report.failed_lines:
            shown = "; ".join(f"line {n}: {m}" for n, m in report.failed_lines[:3])
            raise FormatError(f"no record of {path.name} could be read ({shown})")
        if delete_missing:
            _delete_missing(run)
    finally:
        run.seen.close()
        report.seconds = time.perf_counter() - started
        catalog.finish_run(collection, report.run_id, report.to_dict())
    return report


def _read_all(
    run: _Run, path: Path, kind: str, options: ReadOptions, batch_size: int, quiet: bool | None
) -> None:
    total = count_records(path, kind)
    done = 0
    with progress_bar(f"ingest {run.collection}", total, unit="items", quiet=quiet) as task:
        for rec in read_records(path, kind, options):
            if isinstance(rec, BadLine):
                run.report.failed_lines.append((rec.line, rec.message))
                continue
            run.report.read += 1
            if run.pending.pop(rec.id, None) is not None:  # re-inserted: batch follows the file
                run.report.duplicates += 1
            run.pending[rec.id] = rec
            if len(run.pending) >= batch_size:
                _flush(run)
                task.advance(rec.line - done)
                done = rec.line
        _flush(run)
        if total is not None:
            task.advance(max(total - done, 0))


def _flush(run: _Run) -> None:
    """Embed and commit the pending batch (deletes and upserts, in one pass each); ids read in
    an earlier batch count as duplicates (the last occurrence wins, as within a batch)."""
    run.report.duplicates += run.seen.add(run.pending)
    records, run.pending = list(run.pending.values()), {}
    deletes = [r.id for r in records if r.delete]
    items: list[ItemIn] = []
    lines: dict[str, int] = {}
    for rec in records:
        if rec.delete:
            continue
        try:
            items.append(ItemIn(rec.id, rec.text, rec.metadata))
            lines[rec.id] = rec.line
        except EmbedopsError as exc:
            run.report.failed_lines.append((rec.line, exc.message))
    if deletes:
        run.report.deleted += run.catalog.delete(run.collection, deletes)
    todo = run.catalog.plan_upsert(run.collection, items) if items else []
    run.report.unchanged += len(items) - len(todo)
    if not todo:
        return
    vectors = dict(run.embed([it.text for it in todo]))
    run.catalog.upsert(
        run.collection, todo, vectors, run_id=run.report.run_id, source=run.source,
        lines=[lines[it.id] for it in todo],
    )
    run.report.embedded += len(todo)


def _delete_missing(run: _Run) -> None:
    if run.report.failed_lines:
        run.report.notes.append(
            f"--delete-missing skipped: {len(run.report.failed_lines)} line(s) failed, and an "
            "item on a failed line would have been deleted; fix them and run again"
        )
        return
    stale = run.seen.missing(run.catalog.all_ids(run.collection))
    for start in range(0, len(stale), 10_000):
        run.report.deleted += run.catalog.delete(run.collection, stale[start : start + 10_000])
