"""Per-key rate limits, configured per role, answered with 429 and ``Retry-After``.

Each role may have a limit in the notation of the ``limits`` library: ``"20/second"``,
``"1000/minute"``, or several joined by ``;`` (``"10/second;300/minute"``: bursts of 10, at most
300 a minute). Every request authenticated with a key spends one hit of that key's limits; the
window moves (a request counts for exactly one period after it was made). A role without a
limit, and the anonymous caller of a server run with ``--no-auth``, are not limited.

Counts live in the memory of one server process: with ``--workers N`` each worker counts on its
own, so a key may get up to N times its limit (divide the limit by N to bound the total).

Quotas per key (set with ``embedops keys create --rate-limit/--max-items/--tokens-per-day``):

- ``rate_limit``: the key's own limit, in place of its role's (per process, as above);
- ``tokens_per_day``: embed tokens (the model's own count, ``count_tokens``) per UTC day,
  spent in ``keys.db`` in one transaction, so shared by every worker; over it, 429 with
  ``Retry-After`` set to the next UTC midnight;
- ``max_items``: live items in the collections the key may see; an upsert that would add more
  new ids is refused with 429 (``Retry-After``: 3600, once items are deleted it goes through).

Every refusal counts in ``embedops_quota_refusals_total{key_id,quota}`` and is written to the
audit log (``quota.exceeded``); spent tokens count in ``embedops_key_embed_tokens_total``.
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
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


class QuotaExceeded(RateLimited):
    """A key is over one of its quotas (items stored, embed tokens per day)."""

    code = "quota_exceeded"

    def __init__(self, key_id: str, quota: str, detail: str, retry_after: int) -> None:
        EmbedopsError.__init__(
            self, f"key {key_id} is over its {quota} quota ({detail})",
            f"retry after {retry_after} s (the Retry-After header), or ask an admin for a "
            "larger quota",
        )
        self.retry_after = retry_after
        self.quota = quota


class RateLimiter:
    """Moving-window limits per API key, chosen by the key's role (see the module doc)."""

    def __init__(self, by_role: Mapping[Role, str | None]) -> None:
        from limits.storage import MemoryStorage
        from limits.strategies import MovingWindowRateLimiter

        self._text = {role: text for role, text in by_role.items() if text}
        self._items = {role: parse_limit(text) for role, text in self._text.items()}
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._own: dict[str, list[Any]] = {}

    @classmethod
    def from_settings(cls, settings: Any) -> RateLimiter | None:
        """The limiter of a ``ServeSettings``, or None when no role is limited (nothing to do
        per request, and the ``limits`` library is never imported)."""
        by_role = {role: getattr(settings, f"rate_limit_{role.name}") for role in Role}
        if not any(by_role.values()):
            return None
        return cls(by_role)

    def hit(self, principal: Principal) -> None:
        """Spend one request of ``principal``'s limits (its own ``rate_limit`` if it has one,
        else its role's), or raise RateLimited (nothing spent)."""
        if principal.rate_limit:
            text = principal.rate_limit
            items = self._own.get(text)
            if items is None:
                items = self._own[text] = parse_limit(text)
        else:
            text = self._text.get(principal.role, "")
            items = self._items.get(principal.role, [])
        if not items:
            return
        key = principal.key_id
        full = [item for item in items if not self._limiter.test(item, key)]
        if not full and all(self._limiter.hit(item, key) for item in items):
            return
        raise RateLimited(key, text, self._retry_after(full or items, key))

    def _retry_after(self, items: list[Any], key: str) -> int:
        """Whole seconds until every limit in ``items`` admits one more request (at least 1)."""
        now = time.time()
        reset = max(self._limiter.get_window_stats(item, key).reset_time for item in items)
        return max(1, math.ceil(reset - now))


def limiter_for(app: Any, principal: Principal) -> RateLimiter | None:
    """The app's limiter for ``principal``: the one made from the settings, or, for a key with
    its own rate limit on a server whose roles are unlimited, one made on first use."""
    limiter: RateLimiter | None = getattr(app.state, "ratelimit", None)
    if limiter is None and principal.rate_limit:
        limiter = app.state.ratelimit = RateLimiter({})
    return limiter


_COUNTERS: weakref.WeakKeyDictionary[Any, tuple[Any, Any]] = weakref.WeakKeyDictionary()


def _counters(metrics: Any) -> tuple[Any, Any]:
    """(refusals, tokens) counters in the app's own metrics registry, made once."""
    found = _COUNTERS.get(metrics)
    if found is None:
        from prometheus_client import Counter

        found = (
            Counter("embedops_quota_refusals", "Requests refused over a key's quota",
                    ["key_id", "quota"], registry=metrics.registry),
            Counter("embedops_key_embed_tokens", "Embed tokens spent by keys with a daily "
                    "token quota", ["key_id"], registry=metrics.registry),
        )
        _COUNTERS[metrics] = found
    return found


def _refuse(request: Any, principal: Principal, error: QuotaExceeded) -> QuotaExceeded:
    """Count and audit a refusal (key id and quota only, never texts), and return it."""
    from embedops.engine import audit

    ctx = request.app.state.ctx
    _counters(ctx.metrics)[0].labels(principal.key_id, error.quota).inc()
    audit.record(ctx.workspace, "quota.exceeded", principal.key_id, quota=error.quota)
    return error


def _to_midnight(now: float) -> int:
    """Whole seconds until the next UTC midnight (at least 1)."""
    return max(1, math.ceil(86400 - now % 86400))


def charge_tokens(request: Any, principal: Principal, count: Callable[[], int]) -> None:
    """Spend ``count()`` embed tokens of ``principal``'s daily quota (``count`` is called only
    for a key that has one), or raise QuotaExceeded (nothing spent)."""
    limit = principal.tokens_per_day
    if limit is None:
        return
    tokens = int(count())
    now = time.time()
    ctx = request.app.state.ctx
    ok, used = ctx.keys.spend_tokens(principal.key_id, int(now // 86400), tokens, limit)
    if not ok:
        raise _refuse(request, principal, QuotaExceeded(
            principal.key_id, "tokens_per_day", f"{used} of {limit} spent today, {tokens} asked",
            _to_midnight(now)))
    _counters(ctx.metrics)[1].labels(principal.key_id).inc(tokens)


def check_items(request: Any, principal: Principal, collection: str, ids: Sequence[str]) -> None:
    """Refuse an upsert into ``collection`` that would take the live items of every collection
    ``principal`` may see past its ``max_items`` (ids already there are not new)."""
    limit = principal.max_items
    if limit is None:
        return
    api = request.app.state.ctx.api
    stored = sum(c.item_count for c in api.collections.list() if principal.may_see(c.name))
    unique = list(dict.fromkeys(ids))
    new = len(unique) - len(api.get_items(collection, unique))
    if stored + new > limit:
        raise _refuse(request, principal, QuotaExceeded(
            principal.key_id, "max_items", f"{stored} of {limit} stored, {new} new", 3600))
