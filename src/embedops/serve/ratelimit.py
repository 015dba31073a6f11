"""Per-key rate limits, configured per role, answered with 429 and ``Retry-After``.

Each role may have a limit in the notation of the ``limits`` library: ``"20/second"``,
``"1000/minute"``, or several joined by ``;`` (``"10/second;300/minute"``: bursts of 10, at most
300 a minute). Every request authenticated with a key spends one hit of that key's limits; the
window moves (a request counts for exactly one period after it was made). A role without a
limit, and the anonymous caller of a server run with ``--no-auth``, are not limited.

Counts live in the memory of one server process: with ``--workers N`` each worker counts on its
own, so a key may get up to N times its limit (divide the limit by N to bound the total).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

from embedops.errors import EmbedopsError, InvalidInput
from embedops.serve.keys import Principal, Role

_NOTATION = "write e.g. '20/second', '1000/minute' or '10/second;300/minute'"


class RateLimited(EmbedopsError):
    """A key made more requests than its role's rate limit allows; ``retry_after`` is the
    number of seconds after which one more request will be admitted."""

    http_status = 429
    code = "rate_limited"

    def __init__(self, key_id: str, limit: str, retry_after: int) -> None:
        super().__init__(
            f"key {key_id} is over its rate limit of {limit}",
            f"retry after {retry_after} s (the Retry-After header)",
        )
        self.retry_after = retry_after


def parse_limit(text: str, what: str = "rate limit") -> list[Any]:
    """``text`` as ``limits`` RateLimitItems, or InvalidInput naming the notation."""
    from limits import parse_many

    try:
        items = list(parse_many(text))
    except ValueError:
        items = []
    if not items or any(item.amount < 1 for item in items):
        raise InvalidInput(f"{what} '{text}' is not a rate", _NOTATION)
    return items


class RateLimiter:
    """Moving-window limits per API key, chosen by the key's role (see the module doc)."""

    def __init__(self, by_role: Mapping[Role, str | None]) -> None:
        from limits.storage import MemoryStorage
        from limits.strategies import MovingWindowRateLimiter

        self._text = {role: text for role, text in by_role.items() if text}
        self._items = {role: parse_limit(text) for role, text in self._text.items()}
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    @classmethod
    def from_settings(cls, settings: Any) -> RateLimiter | None:
        """The limiter of a ``ServeSettings``, or None when no role is limited (nothing to do
        per request, and the ``limits`` library is never imported)."""
        by_role = {role: getattr(settings, f"rate_limit_{role.name}") for role in Role}
        if not any(by_role.values()):
            return None
        return cls(by_role)

    def hit(self, principal: Principal) -> None:
        """Spend one request of ``principal``'s limits, or raise RateLimited (nothing spent)."""
        items = self._items.get(principal.role)
        if not items:
            return
        key = principal.key_id
        full = [item for item in items if not self._limiter.test(item, key)]
        if not full and all(self._limiter.hit(item, key) for item in items):
            return
        raise RateLimited(key, self._text[principal.role], self._retry_after(full or items, key))

    def _retry_after(self, items: list[Any], key: str) -> int:
        """Whole seconds until every limit in ``items`` admits one more request (at least 1)."""
        now = time.time()
        reset = max(self._limiter.get_window_stats(item, key).reset_time for item in items)
        return max(1, math.ceil(reset - now))
