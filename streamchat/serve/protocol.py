"""uvicorn's HTTP protocols with a deadline and a size bound for request headers.

uvicorn bounds header size (h11 only) but not header time: a client that sends a partial request
line and then a byte every few seconds held its connection (and a file descriptor) forever, so
20,000 of them exhausted the process. Each request's headers must now arrive within
HEADER_TIMEOUT_S of the connection opening (or of the previous response ending).

serve speaks through `HeaderTimeoutHttpToolsProtocol` (uvicorn's C parser, httptools/llhttp) when
httptools is installed, and `HeaderTimeoutH11Protocol` (pure Python) otherwise. llhttp sets no
limit on header size, so the same deadline also counts the bytes that arrive before the headers
are complete and answers 431 past MAX_HEADER_BYTES, as h11's `h11_max_incomplete_event_size` does.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_S = 10.0
MAX_HEADER_BYTES = 64 * 1024  # also serve's h11_max_incomplete_event_size
_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
              b"content-length: 32\r\nconnection: close\r\n\r\nRequest header fields too large.")


class HeaderDeadline:
    """What both protocols add: a timer armed while a request's headers are awaited, and the
    bytes received meanwhile counted. Mixed in before uvicorn's protocol class."""

    header_timeout = HEADER_TIMEOUT_S
    _header_timer: asyncio.TimerHandle | None = None
    _header_bytes = 0
    _header_tail = b""  # the last bytes counted, to find a blank line split across two chunks
    _header_started = False
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any

    def _arm(self) -> None:
        self._disarm()
        self._header_bytes, self._header_tail, self._header_started = 0, b"", False
        self._header_timer = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expired(self) -> None:
        self._header_timer = None
        if not self._in_request() and not self.transport.is_closing():
            self.transport.close()

    def _in_request(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm()

    def data_received(self, data: bytes) -> None:
        awaiting = self._header_timer is not None and not self._in_request()
        if awaiting and self._count_header_bytes(data) > MAX_HEADER_BYTES:
            if not self.transport.is_closing():  # refused before the parser sees it: no request starts
                self._disarm()
                self.transport.write(_TOO_LARGE)
                self.transport.close()
            return
        super().data_received(data)  # type: ignore[misc]
        if self._in_request():
            self._disarm()  # the headers are in; the app bounds the body itself

    def _count_header_bytes(self, data: bytes) -> int:
        """Add the bytes of `data` that belong to the headers awaited, and return the total so far.
        The chunk that completes the headers counts up to their blank line, not the body after it
        (that chunk used to go uncounted: 120 KiB of headers in one send were served)."""
        seen = self._header_tail + data
        start = 0
        if not self._header_started:  # blank lines before a request line end nothing
            start = len(seen) - len(seen.lstrip(b"\r\n"))
            self._header_started = start < len(seen)
        ends = [found + len(mark) for mark in (b"\r\n\r\n", b"\n\n") if (found := seen.find(mark, start)) >= 0]
        if ends:  # the headers end in this chunk
            self._header_bytes += min(ends) - len(self._header_tail)
            self._header_tail = b""
        else:
            self._header_bytes += len(data)
            self._header_tail = seen[-3:] if self._header_started else b""
        return self._header_bytes

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Any) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]


class HeaderTimeoutH11Protocol(HeaderDeadline, H11Protocol):
    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._disarm()
        super().handle_websocket_upgrade(event)


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is not installed: serve speaks h11
    HTTP_PROTOCOL: type[asyncio.Protocol] = HeaderTimeoutH11Protocol
else:
    class HeaderTimeoutHttpToolsProtocol(HeaderDeadline, HttpToolsProtocol):
        def handle_websocket_upgrade(self) -> None:
            self._disarm()
            super().handle_websocket_upgrade()

    HTTP_PROTOCOL = HeaderTimeoutHttpToolsProtocol  # uvicorn's C parser: the serve extra installs it
