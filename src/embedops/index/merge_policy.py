"""When segments merge, and how fast (issue 19): the size-tiered policy and the merge rate.

The policy (``merge_plan``) picks the segments a refresh folds together; the rate
(``MergeRate``, ``Throttle``) paces the build of the merged segment, chunk by chunk, so a
background merge leaves the cores to serving between chunks.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from embedops.errors import InvalidInput
from embedops.index.segments import MAX_SEGMENTS

if TYPE_CHECKING:
    from embedops.index.segments import Segment

#: a segment whose tombstones exceed this share of its entries is merged (dropping them)
TOMBSTONE_SHARE = 0.1
#: size tiers: segments whose live sizes are within a factor ``TIER_FACTOR`` share a tier, and
#: a tier holding ``TIER_FANOUT`` segments is merged into one (of the next tier up)
TIER_FACTOR = 4
TIER_FANOUT = 4


def merge_plan(segs: Sequence[Segment], max_segments: int | None = MAX_SEGMENTS,
               incoming: int = 0, worn: bool = True, floor: int = 0) -> list[str]:
    """Size-tiered policy: names of the segments to merge into one new segment (with the
    ``incoming`` entries being sealed, if any). Empty: none.

    * Every segment under ``floor`` live entries, when something is sealed or merged anyway:
      the small segments are built exact (flat), so folding them together costs a copy of
      their vectors, and the search then scores one small matrix instead of several (like
      Lucene's floor segment size). A new segment is under the floor only until enough
      writes have joined it to make a graph worth building.

    * With ``worn``, a segment whose tombstones exceed ``TOMBSTONE_SHARE`` of its entries
      (that drops them; a refresh leaves it to the merge, so its cost follows the write).
    * Every tier (live sizes within a factor ``TIER_FACTOR``, see ``tier``) holding
      ``TIER_FANOUT`` segments, the incoming one included: the result lands a tier up, so an
      entry is rewritten about ``log_TIER_FACTOR(n / refresh size)`` times in its life, not at
      every refresh, and the large base is merged only when its tier fills.
    * Then, with ``max_segments``, the smallest remaining segments until the result fits it.
    """
    chosen = {s.name for s in segs
              if worn and len(s.dead) > TOMBSTONE_SHARE * max(int(s.index.count), 1)}
    tiers: dict[int, list[str]] = {}
    for seg in segs:
        if seg.name not in chosen:
            tiers.setdefault(tier(seg.live), []).append(seg.name)
    new_tier = tier(incoming) if incoming else None
    chosen.update(n for level, names in tiers.items()
                  if len(names) + (level == new_tier) >= TIER_FANOUT for n in names)
    if incoming or chosen:
        chosen.update(s.name for s in segs if s.live < floor)
    rest = sorted((s for s in segs if s.name not in chosen), key=lambda s: (s.live, s.name))
    while max_segments is not None and rest and len(rest) + 1 > max_segments:
        chosen.add(rest.pop(0).name)
    return [s.name for s in segs if s.name in chosen]


def tier(entries: int) -> int:
    """The size tier of a segment of ``entries`` live entries: ``floor(log_TIER_FACTOR)``."""
    level = 0
    while entries >= TIER_FACTOR:
        entries //= TIER_FACTOR
        level += 1
    return level


# --- the merge rate -------------------------------------------------------------------------------
RATE_ENV = "EMBEDOPS_MERGE_RATE"
CHUNK_ENV = "EMBEDOPS_MERGE_CHUNK"
_clock: Callable[[], float] = time.monotonic
_sleep: Callable[[float], None] = time.sleep


@dataclass(frozen=True)
class MergeRate:
    """How fast a segment is built by a refresh or merge: at most ``vectors_per_s`` vectors a
    second (0: as fast as the machine goes, in one call), added ``chunk`` vectors at a time;
    between chunks the build sleeps, leaving the cores to serving."""

    vectors_per_s: float = 0.0
    chunk: int = 10_000

    def __post_init__(self) -> None:
        rate = self.vectors_per_s
        if isinstance(rate, bool) or not isinstance(rate, int | float) or \
                not 0 <= rate < math.inf:
            raise InvalidInput(f"the merge rate must be a number of vectors per second >= 0 "
                               f"(0: unlimited), got {rate!r}")
        if isinstance(self.chunk, bool) or not isinstance(self.chunk, int) or self.chunk < 1:
            raise InvalidInput(f"the merge chunk must be a positive integer, got {self.chunk!r}")

    @property
    def limited(self) -> bool:
        """True when builds are paced."""
        return self.vectors_per_s > 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MergeRate:
        """The rate set by ``EMBEDOPS_MERGE_RATE`` (vectors/s) and ``EMBEDOPS_MERGE_CHUNK``;
        unlimited when unset."""
        env = os.environ if environ is None else environ
        try:
            rate = float(env.get(RATE_ENV) or 0)
            chunk = int(env.get(CHUNK_ENV) or cls.chunk)
        except ValueError as exc:
            raise InvalidInput(f"{RATE_ENV} / {CHUNK_ENV} must be numbers: {exc}") from exc
        return cls(rate, chunk)


class Throttle:
    """Paces a build at ``rate``: ``chunks`` yields the row ranges to add, sleeping before
    each one until the vectors already added fit the rate. ``clock`` and ``sleep`` are
    injectable, so a test counts what it would sleep without waiting."""

    def __init__(self, rate: MergeRate, clock: Callable[[], float] | None = None,
                 sleep: Callable[[float], None] | None = None) -> None:
        self.rate = rate
        self._clock = clock or _clock  # the module's, looked up now: a test may replace them
        self._sleep = sleep or _sleep
        self.slept = 0.0
        self.pauses = 0

    def chunks(self, start: int, stop: int) -> Iterator[tuple[int, int]]:
        """Ranges ``[a, b)`` of at most ``rate.chunk`` rows covering ``[start, stop)``; the
        ``start`` rows before them count as done at the first chunk (the first build)."""
        began = self._clock()
        for a in range(start, stop, self.rate.chunk):
            if self.rate.limited and a:
                self._pace(began, a)
            yield a, min(stop, a + self.rate.chunk)

    def _pace(self, began: float, done: int) -> None:
        wait = began + done / self.rate.vectors_per_s - self._clock()
        if wait > 0:
            self._sleep(wait)
            self.slept += wait
            self.pauses += 1
