"""Does a served index hold what the catalog says it should? (issue 21, item 3)

A snapshot records, in its manifest ``meta``, where the build started reading the catalog
(``catalog_ts``) and a ``consistency`` entry: the number of items it holds and a checksum over
its ``(id, model version)`` pairs (``record``). ``compare`` puts that next to the catalog as it
is now: the items the catalog held at ``catalog_ts`` (live, with a vector of the version, not
written since) must be exactly the index's items, leaving out those written since the build
(less the change tracker's look-back ``MARGIN_S``), which the served index takes from the
catalog's change log on its own.

The two ways to differ:

* ``index_only``: the index holds items the catalog no longer has and never deleted (they
  vanished: a catalog restored from an older copy, a lost write-ahead log). Served as they are,
  searches return them and then drop them at hydration: fewer than ``k`` hits, silently.
* ``catalog_only``: the catalog holds items, unchanged since before the build, that the index
  lacks (a catalog restored from a newer copy, vectors backfilled after the build). They are
  never returned.

Either is a divergence; ``IndexManager`` repairs it by a rebuild from the catalog. What this
does not see: an item whose *update* was rolled back keeps its id, so the index serves the newer
vector until the next build (ids are compared, not contents).

The checksum is a *multiset sum* (``sum256:``): the sum modulo 2**256 of the sha256 of each
``(id, model version)`` pair, so a segment refresh updates it by the items it adds and removes
(``updated``) instead of re-hashing the collection. It detects accidental divergence (a lost or
extra id changes the sum); it is not meant to resist someone crafting ids to collide. Snapshots
published before it carry the older ``sha256:`` digest over the sorted pairs, still verified.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from embedops.index.segments import KEYS
from embedops.search.sync import MARGIN_S

CONSISTENT = "consistent"
DIVERGED = "diverged"
META_KEY = "consistency"
SUM = "sum256:"
_SORTED = "sha256:"
_MOD = 1 << 256


def checksum(ids: Iterable[str], model_version: str, scheme: str = SUM) -> str:
    """The checksum of an index's items: ``sum256:`` (the multiset sum, the default) or the
    older ``sha256:`` over the sorted ``(id, model version)`` pairs (order-free either way)."""
    if scheme == _SORTED:
        digest = hashlib.sha256()
        for item_id in sorted(ids):
            digest.update(_pair(item_id, model_version))
        return _SORTED + digest.hexdigest()
    return _sum_text(_sum(ids, model_version))


def _pair(item_id: str, model_version: str) -> bytes:
    return f"{item_id}\x00{model_version}\n".encode("utf-8", "surrogatepass")


def _sum(ids: Iterable[str], model_version: str) -> int:
    total = 0
    for item_id in ids:
        total += int.from_bytes(hashlib.sha256(_pair(item_id, model_version)).digest(), "big")
    return total % _MOD


def _sum_text(total: int) -> str:
    return f"{SUM}{total:064x}"


def updated(entry: Any, added: Sequence[str], removed: Sequence[str], model_version: str
            ) -> dict[str, Any] | None:
    """The ``consistency`` entry of a snapshot made from one whose entry is ``entry`` by adding
    the items ``added`` and removing ``removed`` (a rewritten item is in both): work in
    proportion to the change. None when ``entry`` has no multiset sum to update (an older
    snapshot): then ``record`` the new snapshot's items."""
    if not isinstance(entry, dict) or not isinstance(entry.get("count"), int):
        return None
    found = entry.get("checksum")
    if not isinstance(found, str) or not found.startswith(SUM):
        return None
    try:
        total = int(found[len(SUM):], 16)
    except ValueError:
        return None
    total = (total + _sum(added, model_version) - _sum(removed, model_version)) % _MOD
    return {"count": entry["count"] + len(added) - len(removed), "checksum": _sum_text(total)}


def read_keys(snapshot: Path) -> list[str] | None:
    """The item ids of a snapshot folder (its ``keys.json``), read without loading the index;
    None when unreadable (``verify`` reports that)."""
    try:
        keys = json.loads(Path(snapshot, KEYS).read_bytes())
    except (OSError, ValueError):
        return None
    ok = isinstance(keys, list) and all(isinstance(k, str) for k in keys)
    return keys if ok else None


def record(ids: Sequence[str], model_version: str) -> dict[str, Any]:
    """The ``consistency`` entry of a snapshot's meta: item count and checksum."""
    return {"count": len(ids), "checksum": checksum(ids, model_version)}


@dataclass(frozen=True)
class Consistency:
    """The outcome of one comparison of an index with the catalog.

    ``state`` is ``consistent`` or ``diverged``; ``index_only`` and ``catalog_only`` count the
    items on one side only (never their ids: ids can be user data). ``compared`` is how many
    items were compared (those written since the build are left to the change tracker).
    ``checksum`` is the one the snapshot recorded (None for snapshots older than the check),
    ``catalog_checksum`` the same sum over what the catalog says the index should hold.
    ``repaired`` holds the divergence a rebuild repaired, when one did."""

    state: str
    snapshot: str | None
    index_items: int
    compared: int
    index_only: int
    catalog_only: int
    checksum: str | None
    catalog_checksum: str
    checked_at: float
    problems: tuple[str, ...] = ()
    repaired: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """True when the index holds exactly what the catalog says."""
        return self.state == CONSISTENT

    @property
    def vanished(self) -> bool:
        """True when the index serves items the catalog no longer has (wrong results)."""
        return self.index_only > 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (for status, readiness and metrics)."""
        out = asdict(self)
        out["problems"] = list(self.problems)
        return out

    def after_repair(self, fresh: Consistency) -> Consistency:
        """``fresh`` (the check of the rebuilt index), noting what this one found."""
        found = {"index_only": self.index_only, "catalog_only": self.catalog_only,
                 "snapshot": self.snapshot, "at": round(self.checked_at, 3)}
        return replace(fresh, repaired=found)


def compare(catalog: Any, collection: str, model_version: str, keys: Sequence[str],
            meta: dict[str, Any]) -> Consistency:
    """Compare the items of an index (``keys``, its snapshot's ``meta``) with the catalog."""
    since = float(meta.get("catalog_ts") or 0.0)
    # Three reads, each of the catalog as committed when it runs: the changes last, so a write
    # committed between them is among the recent ones (left out of the comparison). Read first,
    # a write landing before the id list (seconds at 1M items) counted as an item the index
    # lacked, and a server rebuilt its whole index for nothing.
    without = set(catalog.missing_vectors(collection, model_version))
    ids = catalog.all_ids(collection)
    recent = {c[0] for c in catalog.changes_since(collection, since - MARGIN_S)}
    expected = {i for i in ids if i not in without and i not in recent}
    held = set(keys)
    compared = held - recent
    index_only, catalog_only = len(compared - expected), len(expected - compared)
    entry = meta.get(META_KEY)
    recorded: dict[str, Any] = entry if isinstance(entry, dict) else {}
    problems = _problems(index_only, catalog_only)
    found = recorded.get("checksum")
    scheme = _SORTED if isinstance(found, str) and found.startswith(_SORTED) else SUM
    if recorded and (recorded.get("count") != len(keys)
                     or found != checksum(keys, model_version, scheme)):
        problems.append("the snapshot's items do not match the count and checksum recorded "
                        "when it was published")
    return Consistency(
        state=DIVERGED if problems else CONSISTENT,
        snapshot=str(meta["name"]) if meta.get("name") else None,
        index_items=len(keys), compared=len(compared), index_only=index_only,
        catalog_only=catalog_only, checksum=recorded.get("checksum"),
        catalog_checksum=checksum(expected | (held & recent), model_version, scheme),
        checked_at=time.time(), problems=tuple(problems),
    )


def _problems(index_only: int, catalog_only: int) -> list[str]:
    out = []
    if index_only:
        out.append(f"the index holds {index_only} item(s) the catalog does not have (a catalog "
                   "restored from an older copy or a lost write-ahead log): searches return "
                   "fewer hits than asked")
    if catalog_only:
        out.append(f"the catalog holds {catalog_only} item(s), unchanged since the build, that "
                   "the index lacks: searches never return them")
    return out
