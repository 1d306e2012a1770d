"""Limits on what a client holds before the app sees a request: header bytes, time, connections.

uvicorn's httptools protocol keeps reading a request head however long it is, waits for ever for
the rest of a half-sent request, and accepts connections until the process runs out of file
descriptors (then the outbound side cannot open a socket either). `guarded_protocol` adds the three
limits to it:

- a request head (request line and headers) over `max_header_bytes` is answered 431 and closed;
- a request not received whole within `read_timeout` seconds of its first byte (or of the
  connection, for the first request) is answered 408 and closed;
- at `max_connections`, a new connection closes the one that has waited longest without a whole
  request head (a slow or idle client, or one kept alive after its answer); when every connection
  is busy with a request, the new one is answered 503 and closed.

An answered request is left to uvicorn: its keep-alive timeout closes an idle connection.
"""

from __future__ import annotations

import asyncio
import resource
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

# File descriptors kept free for everything but inbound connections: the store, the outbound
# connection pools, the mapping and store processes' pipes, log files.
RESERVED_FILES = 256
MIN_CONNECTIONS = 64


def default_max_connections() -> int:
    """The open-file limit less RESERVED_FILES (at least MIN_CONNECTIONS)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 10_000
    return max(MIN_CONNECTIONS, soft - RESERVED_FILES)


@dataclass(frozen=True)
class Limits:
    max_header_bytes: int
    read_timeout: float
    max_connections: int


class _Waiting:
    """The connections of one server that wait for a whole request head, oldest first."""

    def __init__(self) -> None:
        self.protocols: dict[GuardedProtocol, None] = {}  # a dict keeps insertion order

    def add(self, protocol: GuardedProtocol) -> None:
        self.protocols.pop(protocol, None)
        self.protocols[protocol] = None

    def discard(self, protocol: GuardedProtocol) -> None:
        self.protocols.pop(protocol, None)

    def oldest(self) -> GuardedProtocol | None:
        return next(iter(self.protocols), None)


def _refusal(status: int, reason: str) -> bytes:
    body = reason.encode()
    return b"".join([STATUS_LINE[status], b"content-type: text/plain; charset=utf-8\r\n",
                     b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body), body])


class GuardedProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with `limits` (built by `guarded_protocol`, which sets both class attributes)."""

    limits: Limits
    waiting: _Waiting

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_read = 0  # bytes received while the current request head was incomplete
        self._head_parsed = 0  # bytes of the current request's URL and headers, as parsed
        self._in_head = True
        self._deadline: asyncio.TimerHandle | None = None

    # -- connection -----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            oldest = self.waiting.oldest()
            if oldest is None:
                self.refuse(503, "too many connections")
                return
            oldest.refuse(503, "too many connections: the longest waiting is closed")
        self._wait_for_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def refuse(self, status: int, reason: str) -> None:
        """Answer `status` (unless an answer has begun) and close."""
        self._stop_waiting()
        if not self.transport.is_closing():
            if self.cycle is None or not self.cycle.response_started:
                self.transport.write(_refusal(status, reason))
            self.transport.close()

    def _wait_for_request(self) -> None:
        self._in_head = True
        self._head_read = self._head_parsed = 0
        self.waiting.add(self)
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.limits.read_timeout, self.refuse, 408,
                                                  "the request did not arrive in time")

    def _stop_waiting(self) -> None:
        self.waiting.discard(self)
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    # -- the request head -----------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_read += len(data)
        super().data_received(data)
        if self._in_head and self._head_read > self.limits.max_header_bytes:  # a head not yet whole
            self.refuse(431, "request header fields too large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_head:  # the next request on a kept-alive connection
            self._wait_for_request()

    def on_url(self, url: bytes) -> None:
        self._head_parsed += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_parsed += len(name) + len(value) + 4  # ": " and CRLF
        if self._head_parsed > self.limits.max_header_bytes:
            raise ValueError("request header fields too large")  # httptools stops; send_400_response answers
        super().on_header(name, value)

    def send_400_response(self, msg: str) -> None:
        if max(self._head_read if self._in_head else 0, self._head_parsed) > self.limits.max_header_bytes:
            self.refuse(431, "request header fields too large")
        else:
            super().send_400_response(msg)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self.waiting.discard(self)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():  # kept alive, idle until its next request: it may be closed for a new one
            self.waiting.add(self)


def guarded_protocol(limits: Limits) -> type[GuardedProtocol]:
    """The protocol class to give uvicorn (`Config(http=...)`), with its own set of waiting connections."""
    return type("BridgeHttpProtocol", (GuardedProtocol,), {"limits": limits, "waiting": _Waiting()})
