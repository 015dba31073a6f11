"""One HTTP exchange with an embedops server: auth header, timeout, bounded retries, errors.

Retried: answers 429 and 503 (after ``Retry-After`` when the server sends it, else after an
exponential back-off) and connections that could not be opened (nothing was sent). Not retried:
anything else, including read timeouts, since the server may have acted on the request.
Every failure is raised as the ``embedops.errors`` class the in-process engine raises.
"""

from __future__ import annotations

import email.utils
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from embedops import __version__
from embedops.client.errors import from_response
from embedops.errors import InvalidInput, Unavailable

API_KEY_ENV = "EMBEDOPS_API_KEY"
RETRY_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait: ``retries`` more tries at most, each wait at most
    ``max_wait`` seconds (a longer ``Retry-After`` is not waited for: the error is raised),
    ``backoff * 2**n`` seconds when the server names no wait."""

    retries: int = 3
    max_wait: float = 30.0
    backoff: float = 0.5

    def __post_init__(self) -> None:
        if self.retries < 0 or self.max_wait < 0 or self.backoff < 0:
            raise InvalidInput("retries, max_wait and backoff must not be negative")


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


class Transport:
    """A pooled ``httpx.Client`` bound to one server, answering parsed JSON or raising."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 30.0,
                 policy: RetryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        headers = {"User-Agent": f"embedops-client/{__version__}"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self.base_url = base_url.rstrip("/")
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def request(self, method: str, path: str, json: Any = None,
                params: Mapping[str, Any] | None = None) -> Any:
        """The JSON answer of ``method path``; raises the mapped ``EmbedopsError``."""
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, json=json, params=params)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                wait = self._wait(attempt, None)
                if wait is None:
                    raise Unavailable(f"cannot connect to {self.base_url}: {exc}",
                                      "check the URL and that 'embedops serve' runs") from exc
            except httpx.TimeoutException as exc:
                raise Unavailable(f"{method} {path} got no answer in time: {exc}",
                                  "raise the client's timeout, or retry later") from exc
            except httpx.HTTPError as exc:
                raise Unavailable(f"{method} {path} failed: {exc}") from exc
            else:
                if response.is_success:
                    return response.json() if response.content else None
                error = from_response(response)
                wait = (self._wait(attempt, response.headers.get("retry-after"))
                        if response.status_code in RETRY_STATUSES else None)
                if wait is None:
                    raise error
            self._sleep(wait)
            attempt += 1

    def _wait(self, attempt: int, header: str | None) -> float | None:
        """Seconds before try ``attempt + 1``, or None when no retry is left or worth it."""
        if attempt >= self.policy.retries:
            return None
        named = retry_after(header)
        wait = named if named is not None else self.policy.backoff * 2**attempt
        return wait if wait <= self.policy.max_wait else None

