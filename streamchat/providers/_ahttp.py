"""The lean transport on asyncio (serve): the same request as `_http.py` (so as the SDK's), sent over
pooled keep-alive connections that are asyncio protocols parsing the response with httptools.

Why: serve read each upstream chunk through five layers (aiohttp's protocol and stream reader, the
SDK's vendored httpx-aiohttp transport, httpx2's raw, byte and text iterators) before our parser saw
it, and built an httpx2 request and response per answer. Measured reading 100 concurrent 100-token
streams from bench/upstream.py in one process: 15–19 µs of CPU per event that way, 7 µs with a
protocol that parses and decodes in its `data_received` (#34: the gateway's per-token goal is 12 µs,
and the upstream side was most of it). Here each read is one wake-up of the task that reads the
answer, with the bytes already unframed by llhttp.

Taken where the blocking lean path is (`path_for`: no proxy, a plain http(s) URL, not
STREAMCHAT_TRANSPORT=sdk) and httptools is installed (serve's extra); tests/test_lean_transport.py
holds it to the SDK's asyncio path as it holds `_http.py` to the SDK's blocking one: the same bytes
at the fake server, the same errors, redirects followed alike (`_http.redirected`).
"""

from __future__ import annotations

import asyncio
import codecs
import collections
import contextlib
import http.client
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import SplitResult, urlsplit

import httptools

from streamchat.cancel import bounded
from streamchat.providers._http import (
    ERROR_BODY_MAX,
    MAX_REDIRECTS,
    REDIRECTS,
    StreamDropped,
    TooManyRedirects,
    _ssl_context,
    redirected,
    request_headers,
    timeouts,
)

log = logging.getLogger("streamchat.http")
IDLE_S = 5.0  # a pooled connection unused this long is closed (the SDK's keep-alive expiry)
HIGH_WATER = 256 * 1024  # bytes read ahead of the answer's reader before the socket stops being read
HEAD_MAX = 256 * 1024  # a response's status line and headers: more is a dropped stream, not memory held
MAX_HEADERS = 100  # http.client's limit on the blocking path (more is its "got more than 100 headers")


def _netloc(parts: SplitResult) -> str:
    """The Host header for a URL, as http.client writes it (no default port, IPv6 in brackets)."""
    host = parts.hostname or ""
    host = host if ":" not in host else f"[{host}]"
    return host if parts.port in (None, 443 if parts.scheme == "https" else 80) else f"{host}:{parts.port}"


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: the response's body kept as it arrives, for one reader at a time.

    `pace` (seconds, serve's `--coalesce-ms`): the reader is woken for the body at most that often.
    A read of body bytes wakes it at once, and if the stream is fast the socket is then left unread
    for `pace`: what the server sends meanwhile comes in the next read, which wakes it at once
    again — so no byte waits more than `pace`. So an upstream sending a token every 5 ms
    is parsed, passed down and written to the client four tokens at a time at 20 ms, not one
    wake-up, event and socket write per token. Over TLS the transport goes on reading the socket
    into its buffer; decrypting, parsing and the rest are still batched. Faults wake it at once."""

    def __init__(self, loop: asyncio.AbstractEventLoop, read_timeout: float, pace: float = 0.0) -> None:
        self.loop, self.read_timeout, self.pace = loop, read_timeout, pace
        self.holder: asyncio.TimerHandle | None = None  # pace: the timer that reads the socket again
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.lost = False
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.headers_done = self.complete = self.received = self.keep_alive = False
        self.body: collections.deque[bytes] = collections.deque()
        self.buffered = self.head = 0
        self.paused = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.last = self.loop.time()
        self.timer: asyncio.TimerHandle | None = None
        self.arrived = float("-inf")  # when the last read brought body bytes (pace)
        self.pieces = 0  # body pieces so far (pace: how many a read brought)

    # -- the protocol (called by the loop) ---------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received = True
        self.last = self.loop.time()
        pieces = self.pieces
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:  # a header cap (on_header) has said its own error first
            self._fail(StreamDropped(f"malformed HTTP response: {exc}"))
        else:
            if self.headers_done:
                if self.pace and self.pieces > pieces:
                    self._paced(self.pieces - pieces)
                return
            self.head += len(data)  # llhttp keeps an unfinished header whole: bounded here
            if self.head <= HEAD_MAX:
                return
            self._fail(StreamDropped(f"the server's response headers exceed {HEAD_MAX // 1024} KiB"))
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.headers_done and not self.complete and exc is None and self._close_delimited():
            self.complete = True  # a body without a length or chunks ends with the connection
            self._wake()
        if not self.complete:
            self._fail(exc if isinstance(exc, OSError) else StreamDropped("the server closed the connection"))

    def _close_delimited(self) -> bool:
        names = {name.lower(): value.lower() for name, value in self.raw_headers}
        return b"content-length" not in names and b"chunked" not in names.get(b"transfer-encoding", b"")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.raw_headers.append((name, value))
        if len(self.raw_headers) > MAX_HEADERS:
            self._fail(StreamDropped(f"got more than {MAX_HEADERS} headers"))
            raise httptools.HttpParserCallbackError  # stops the parser; data_received closes the connection

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self.pieces += 1
        if not self.pace:
            self._wake()

    def _paced(self, pieces: int) -> None:
        """A read brought `pieces` pieces of the body: wake the reader (if it waits and no hold is on),
        and hold the socket unread for `pace` if the stream is fast — this read brought several, or
        came within half the pace of the last. A slow stream is never held (held, it would pay a
        timer, a pause and a resume a token to join one or two)."""
        now = self.loop.time()
        gap, self.arrived = now - self.arrived, now
        if self.waiter is None or self.holder is not None:
            return
        self._wake()
        if pieces > 1 or gap < self.pace / 2:
            self.holder = self.loop.call_later(self.pace, self.unhold)
            if self.transport is not None and not self.paused:
                self.transport.pause_reading()

    def unhold(self) -> None:
        """Stop holding the socket unread: the answer's last events are read (what is left is the
        body's end, drained at once), or the connection goes back to the pool for the next answer."""
        if self.holder is None:
            return
        self.holder.cancel()
        self.holder = None
        if self.transport is not None and not self.paused and not self.lost:
            self.transport.resume_reading()

    def on_message_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()  # llhttp forgets it once the message is over
        self.complete = True
        self._wake()

    # -- the reader's side ---------------------------------------------------------------------
    def _wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self._wake()

    def _late(self) -> None:
        """The read timeout's one timer: nothing arrived for `read_timeout`, or it is set again
        for the rest (a timer per read would cost more than the read)."""
        self.timer = None
        if self.waiter is None:
            return
        left = self.last + self.read_timeout - self.loop.time()
        if left > 0:
            self.timer = self.loop.call_later(left, self._late)
        else:
            self._fail(TimeoutError("no data from the server within the timeout"))

    async def _wait(self) -> None:
        """Until something arrives (headers, body, the end, a fault), within the read timeout."""
        self.waiter = self.loop.create_future()
        if self.timer is None:
            self.timer = self.loop.call_later(self.read_timeout, self._late)
        await self.waiter

    async def headers(self) -> None:
        while not self.headers_done:
            if self.error is not None:
                raise self.error
            await self._wait()

    async def read(self) -> bytes:
        """The body's bytes that arrived (waiting for some); b"" at its end."""
        while not self.body:
            if self.complete:
                return b""
            if self.error is not None:
                raise self.error
            await self._wait()
        data = self.body.popleft() if len(self.body) == 1 else b"".join(self._drain())
        self.buffered -= len(data)
        if self.paused and self.buffered <= HIGH_WATER // 2 and self.transport is not None:
            self.paused = False
            if self.holder is None:
                self.transport.resume_reading()
        return data

    def _drain(self) -> list[bytes]:
        parts = list(self.body)
        self.body.clear()
        return parts

    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.lost and self.error is None

    def done_with(self) -> None:
        self.unhold()  # a connection back in the pool must read its next response
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class AsyncHttpResponse:
    """A streaming response: `status`, `headers` (as http.client's, which map_error reads), the body."""

    def __init__(self, conn: _Connection, *, pooled: bool = True) -> None:
        self._conn, self.pooled = conn, pooled  # a redirect's hop: its connection is closed after it
        self.read = conn.read  # the body's next bytes; b"" at its end
        self.status = conn.status
        self.headers = http.client.HTTPMessage()
        for name, value in conn.raw_headers:
            self.headers[name.decode("latin-1")] = value.decode("latin-1")

    @property
    def is_closed(self) -> bool:
        return self._conn.complete

    def unhold(self) -> None:
        """The answer's last events are read: what is left of the body (its end) comes at once."""
        self._conn.unhold()

    async def iter_text(self) -> AsyncIterator[str]:
        """The body as UTF-8 text, each piece as soon as it arrived."""
        decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode
        read = self._conn.read
        while data := await read():
            if text := decode(data):
                yield text
        if tail := decode(b"", True):
            yield tail

    async def read_error(self) -> str:
        parts: list[bytes] = []
        size = 0
        with contextlib.suppress(OSError, StreamDropped):
            while size < ERROR_BODY_MAX and (data := await self._conn.read()):
                parts.append(data)
                size += len(data)
        return b"".join(parts)[:ERROR_BODY_MAX].decode("utf-8", "replace").strip()


class AsyncHttpTransport:
    """POSTs to one URL over pooled keep-alive connections, on the running loop."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float, pace: float = 0.0) -> None:
        parts = urlsplit(url)
        self.url, self.pace = url, pace
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname or "", parts.port or (443 if self._https else 80)
        self._headers = request_headers(headers)
        # as http.client writes it (_http.py's request, so the SDK's): Host, Accept-Encoding, the length, the rest
        self._head = f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {_netloc(parts)}\r\nAccept-Encoding: identity\r\nContent-Length: "
        self._fields = "".join(f"\r\n{name}: {value}" for name, value in self._headers.items()) + "\r\n\r\n"
        self._timeouts = timeouts(timeout)
        self._idle: list[_Connection] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._context: Any = None

    async def post(self, body: bytes) -> AsyncHttpResponse:
        """The response to `body`, once its headers arrived. The caller closes it (`release`)."""
        log.debug("POST %s (%d bytes)", self.url, len(body))
        request = (self._head + str(len(body)) + self._fields).encode("latin-1") + body
        while True:
            conn, reused = await self._connection()
            try:
                assert conn.transport is not None
                conn.transport.write(request)
                await conn.headers()
            except (StreamDropped, ConnectionError) as exc:
                self._discard(conn)
                if not reused or conn.received:  # a pooled connection the server closed while idle: once more
                    raise StreamDropped(str(exc) or "the server closed the connection") from exc
                continue
            except BaseException:
                self._discard(conn)
                raise
            log.debug("HTTP %d", conn.status)
            response = AsyncHttpResponse(conn)
            if conn.status not in REDIRECTS or (location := response.headers.get("Location")) is None:
                return response
            try:
                await response.read_error()  # a redirect's own body, read as httpx2 reads it
            finally:
                self.release(response)
            return await self._follow(conn.status, location, body)

    async def _follow(self, status: int, location: str, body: bytes) -> AsyncHttpResponse:
        """Follow redirects as _http.py does (`redirected`, as httpx2 for the SDKs); the 21st is
        TooManyRedirects. Each hop on a connection of its own, closed after it (the pool serves the
        base URL)."""
        url, method, headers = self.url, "POST", dict(self._headers)
        payload: bytes | None = body
        for _hop in range(MAX_REDIRECTS):
            url, method, payload = redirected(status, url, location, method, payload, headers)
            log.debug("%s %s (redirected, HTTP %d)", method, url, status)
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https"):
                raise StreamDropped(f"a redirect to an unsupported URL: {parts.scheme}:…")
            https = parts.scheme == "https"
            conn = await self._connect(parts.hostname or "", parts.port or (443 if https else 80), https)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            length = "" if payload is None else f"\r\nContent-Length: {len(payload)}"
            fields = "".join(f"\r\n{name}: {value}" for name, value in headers.items())
            head = f"{method} {target} HTTP/1.1\r\nHost: {_netloc(parts)}\r\nAccept-Encoding: identity{length}{fields}\r\n\r\n"
            try:
                assert conn.transport is not None
                conn.transport.write(head.encode("latin-1") + (payload or b""))
                await conn.headers()
            except BaseException:
                self._discard(conn)
                raise
            log.debug("HTTP %d", conn.status)
            response = AsyncHttpResponse(conn, pooled=False)
            if conn.status not in REDIRECTS or (following := response.headers.get("Location")) is None:
                return response
            status, location = conn.status, following
            try:
                await response.read_error()
            finally:
                self._discard(conn)
        raise TooManyRedirects

    def release(self, response: AsyncHttpResponse) -> None:
        """Done with the response: its connection is kept only if its body was read to the end."""
        conn = response._conn
        conn.done_with()
        if not response.pooled or not conn.reusable():
            self._discard(conn)
            return
        conn._reset()
        conn.idle_since = conn.loop.time()
        self._idle.append(conn)
        if self._sweeper is None:
            self._sweeper = conn.loop.call_later(IDLE_S, self._sweep)

    async def _connection(self) -> tuple[_Connection, bool]:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # connections belong to the loop that made them
            self._close_idle()
            self._loop = loop
        while self._idle:
            conn = self._idle.pop()
            if not conn.lost:
                return conn, True
        return await self._connect(self._host, self._port, self._https), False

    async def _connect(self, host: str, port: int, https: bool) -> _Connection:
        if https and self._context is None:
            self._context = _ssl_context()
        connect, read = self._timeouts
        conn = _Connection(asyncio.get_running_loop(), read, self.pace)
        await bounded(asyncio.get_running_loop().create_connection(
            lambda: conn, host, port, ssl=self._context if https else None, server_hostname=host if https else None), connect)
        return conn

    def _sweep(self) -> None:
        self._sweeper = None
        if not self._idle:
            return
        now = self._idle[0].loop.time()
        keep = [c for c in self._idle if now - c.idle_since < IDLE_S and not c.lost]
        for conn in self._idle:
            if conn not in keep:
                self._discard(conn)
        self._idle = keep
        if keep:
            self._sweeper = keep[0].loop.call_later(IDLE_S - (now - min(c.idle_since for c in keep)), self._sweep)

    @staticmethod
    def _discard(conn: _Connection) -> None:
        conn.done_with()
        if conn.transport is not None and not conn.lost:
            conn.transport.close()

    def _close_idle(self) -> None:
        idle, self._idle = self._idle, []
        with contextlib.suppress(RuntimeError):  # their loop is closed (a process's earlier asyncio.run)
            if self._sweeper is not None:
                self._sweeper.cancel()
            for conn in idle:
                self._discard(conn)
        self._sweeper = None

    async def aclose(self) -> None:
        self._close_idle()
