"""Slow clients are cut off: a deadline for a request's headers and one for its body.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but has no limit on how
long a client may take to send a request: one that sends a byte now and then holds a
connection, and its slot, for good (slowloris). Two bounds close that:

* headers: ``header_protocol(base, seconds)`` subclasses uvicorn's HTTP protocol (httptools or
  h11); from a connection's first moment, and from the first byte of each later request, the
  headers must be complete within ``seconds``, or the server answers ``408`` and closes the
  connection. The app never sees such a request.
* body: ``BodyDeadline`` wraps an ASGI ``receive``; once the app starts reading a body, all of
  it must arrive within ``seconds`` (a total, so a trickle cannot reset it). Past the deadline
  the read raises an HTTP 408 and the response closes the connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from embedops.serve.logging import LOGGER

log = logging.getLogger(LOGGER)

_TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                     b"connection: close\r\ncontent-length: %d\r\n\r\n%s")
_HEADER_BODY = (b'{"error":{"code":"request_timeout","message":"the request headers did not '
                b'arrive in time"}}')
_BAD_REQUEST_RESPONSE = (b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
                         b"connection: close\r\ncontent-length: %d\r\n\r\n%s")
_BAD_REQUEST_BODY = (b'{"error":{"code":"bad_request","message":"the request is not valid '
                     b'HTTP/1.1 (its request line, a header, or its encoding); send '
                     b'percent-encoded paths and ASCII header values"}}')

def header_protocol(base: type[asyncio.Protocol], seconds: float) -> type[asyncio.Protocol]:
    """``base`` (a uvicorn HTTP protocol class) with a deadline on each request's headers."""

    class HeaderDeadline(base):  # type: ignore[valid-type, misc]
        _header_timer: asyncio.TimerHandle | None = None
        _cycle_at_arm: Any = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            cycle = getattr(self, "cycle", None)
            if self._header_timer is None and (cycle is None or cycle.response_complete):
                self._arm()
            super().data_received(data)
            if self._header_timer is not None and getattr(self, "cycle", None) \
                    is not self._cycle_at_arm:
                self._disarm()  # a new request cycle: its headers are complete

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._cycle_at_arm = getattr(self, "cycle", None)
            loop = asyncio.get_running_loop()
            self._header_timer = loop.call_later(seconds, self._headers_late)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def send_400_response(self, msg: str) -> None:
            """The HTTP parser refused the request before the app saw it (a bad request line,
            header or encoding): answer 400 in the API's JSON error shape, then close."""
            transport = getattr(self, "transport", None)
            if transport is None or transport.is_closing():
                return
            transport.write(_BAD_REQUEST_RESPONSE % (len(_BAD_REQUEST_BODY), _BAD_REQUEST_BODY))
            transport.close()

        def _headers_late(self) -> None:
            self._header_timer = None
            transport = getattr(self, "transport", None)
            if transport is None or transport.is_closing():
                return
            log.warning("closed a connection whose request headers took over %.1f s", seconds)
            transport.write(_TIMEOUT_RESPONSE % (len(_HEADER_BODY), _HEADER_BODY))
            transport.close()

    HeaderDeadline.__name__ = f"HeaderDeadline{base.__name__}"
    return HeaderDeadline


class BodyDeadline:
    """An ASGI ``receive`` whose body reads must all be done ``seconds`` after the first one.

    ``timed_out`` is set when the deadline passed, so the response can close the connection.
    Reads after the body is complete (a wait for ``http.disconnect``) are not bounded."""

    def __init__(self, receive: Callable[[], Awaitable[dict[str, Any]]], seconds: float) -> None:
        self._receive = receive
        self._seconds = seconds
        self._deadline: float | None = None
        self._done = False
        self.timed_out = False

    async def __call__(self) -> dict[str, Any]:
        if self._done:
            return await self._receive()
        if self._deadline is None:
            self._deadline = asyncio.get_running_loop().time() + self._seconds
        try:
            # A timer on the current task, not ``wait_for``'s extra task: a body that has
            # already arrived (nearly every request) costs no event-loop round trip.
            async with asyncio.timeout_at(self._deadline):
                message = await self._receive()
        except TimeoutError:
            self.timed_out = True
            log.warning("cut off a request whose body took over %.1f s", self._seconds)
            from starlette.exceptions import HTTPException

            raise HTTPException(408, f"the request body did not arrive within "
                                     f"{self._seconds:g} s; send it faster") from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            self._done = True
        return message
