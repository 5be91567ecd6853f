"""serve's event loop: uvloop, except that a listening socket's waiting connections are all
accepted at once.

libuv (under uvloop) accepts one connection per turn of the loop (libuv PR #3696: most wake-ups
have one to accept). Under a burst that is what makes the tail. Traced with 200 clients on 2
workers: the kernel had finished every handshake within 16 ms, but one worker's accept queue held
47 connections and drained one per turn, and a turn took 10–40 ms while the streams already
accepted opened their upstream connections, so the last client was accepted ~1 s after it
connected. asyncio's own loop accepts up to the backlog per wake-up; so does this server.
uvicorn (≥ 0.36) takes the loop factory by import string: `LOOP`.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import socket
from collections.abc import Callable
from typing import Any

LOOP = "streamchat.serve.accept:new_event_loop"
RETRY_AFTER_S = 1.0  # out of descriptors or memory: stop accepting this long, as asyncio does
_RESOURCE_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)

log = logging.getLogger("streamchat.serve")


class GreedyServer(asyncio.AbstractServer):
    """Accepts every waiting connection (up to `backlog`) each time the listening socket is
    readable, and hands each one to the loop's own transport (`connect_accepted_socket`)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, protocol_factory: Callable[[], asyncio.BaseProtocol],
                 sock: socket.socket, backlog: int) -> None:
        self._loop, self._factory, self._sock, self._backlog = loop, protocol_factory, sock, backlog
        self._opening: set[asyncio.Task[Any]] = set()  # tasks hold only weak references otherwise
        self._serving = False
        self._closed = asyncio.Event()
        sock.setblocking(False)
        sock.listen(backlog)
        self._start()
        log.debug("accepting on %s port %s: every waiting connection at each wake-up", *sock.getsockname()[:2])

    def _start(self) -> None:
        if self._sock.fileno() != -1:
            self._serving = True
            self._loop.add_reader(self._sock, self._accept)

    def _accept(self) -> None:
        for _ in range(self._backlog):
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno not in _RESOURCE_ERRORS:
                    raise
                log.error("cannot accept connections (%s); retrying in %g s", exc.strerror, RETRY_AFTER_S)
                self._loop.remove_reader(self._sock)
                self._serving = False
                self._loop.call_later(RETRY_AFTER_S, self._start)
                return
            task = self._loop.create_task(self._loop.connect_accepted_socket(self._factory, conn))
            self._opening.add(task)
            task.add_done_callback(self._opened)

    def _opened(self, task: asyncio.Task[Any]) -> None:
        self._opening.discard(task)
        if not task.cancelled() and task.exception() is not None:  # e.g. the client reset before we opened it
            log.debug("an accepted connection could not be opened: %r", task.exception())

    def close(self) -> None:
        if self._sock.fileno() != -1:
            self._loop.remove_reader(self._sock)
            self._sock.close()
        self._serving = False
        self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return (self._sock,) if self._sock.fileno() != -1 else ()

    async def start_serving(self) -> None:
        """Serving starts when the server is made (start_serving=True is all uvicorn uses)."""

    async def serve_forever(self) -> None:
        await self.wait_closed()


@functools.cache
def greedy(loop_class: type[asyncio.AbstractEventLoop]) -> type[asyncio.AbstractEventLoop]:
    """`loop_class` whose create_server(sock=...) without TLS serves through GreedyServer."""

    class GreedyLoop(loop_class):  # type: ignore[valid-type, misc]
        async def create_server(self, protocol_factory: Callable[[], asyncio.BaseProtocol],
                                host: Any = None, port: Any = None, *, sock: socket.socket | None = None,
                                backlog: int = 100, ssl: Any = None, **kwargs: Any) -> asyncio.AbstractServer:
            if sock is None or ssl is not None or sock.family not in (socket.AF_INET, socket.AF_INET6):
                server: asyncio.AbstractServer = await super().create_server(
                    protocol_factory, host, port, sock=sock, backlog=backlog, ssl=ssl, **kwargs)
                return server
            return GreedyServer(self, protocol_factory, sock, backlog)

    return GreedyLoop


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvicorn's loop factory for serve (`LOOP`): uvloop with GreedyServer when uvloop is
    installed; asyncio's own loop, which already accepts greedily, when it is not."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return greedy(uvloop.Loop)()
