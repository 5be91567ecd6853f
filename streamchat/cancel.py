"""Cancellation of a running turn from another thread (serve: the client left or sent cancel).

The turn runner checks the token between events; an adapter blocked in a read (a stalled
upstream) registers a closer with `on_cancel`, so a cancel unblocks it at once instead of
after the timeout.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator


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
