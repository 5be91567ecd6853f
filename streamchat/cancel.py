"""Cancellation of a running turn from another thread (serve: the client left or sent cancel).

The turn runner checks the token between events; an adapter blocked in a read (a stalled
upstream) registers a closer with `on_cancel`, so a cancel unblocks it at once instead of
after the timeout. `bounded` is the time limit for a wait on the event loop.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


async def bounded(wait: Coroutine[Any, Any, T], seconds: float) -> T:
    """`wait`, in this task, for at most `seconds` (then TimeoutError).

    `asyncio.timeout` (3.11+) is a timer on the task; `wait_for` runs the wait as a task of its
    own, so what it waited for reaches the caller a loop turn or two late: 25–50 ms each when
    serve carries 200 streams, on every request body and every answer's end. 3.10 has only that.
    """
    import asyncio  # here: a one-shot or a REPL turn never waits on a loop (~25 ms to import)

    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await wait
    return await asyncio.wait_for(wait, seconds)


class CancelToken:
    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []

    def cancel(self) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            with contextlib.suppress(Exception):
                callback()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Run `callback` when cancelled (now, if already); returns a function that unregisters it."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return lambda: self._discard(callback)
        callback()
        return lambda: None

    def _discard(self, callback: Callable[[], None]) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._callbacks.remove(callback)


_local = threading.local()


@contextlib.contextmanager
def scope(token: CancelToken | None) -> Iterator[None]:
    """Make `token` the current thread's token while a turn runs."""
    previous = getattr(_local, "token", None)
    _local.token = token
    try:
        yield
    finally:
        _local.token = previous


@contextlib.contextmanager
def closing_on_cancel(close: Callable[[], None]) -> Iterator[None]:
    """While inside, a cancel of the current turn calls `close` (from the cancelling thread)."""
    token: CancelToken | None = getattr(_local, "token", None)
    if token is None:
        yield
        return
    unregister = token.on_cancel(close)
    try:
        yield
    finally:
        unregister()


def current() -> CancelToken | None:
    """The token of the turn running on this thread, if any."""
    token: CancelToken | None = getattr(_local, "token", None)
    return token
