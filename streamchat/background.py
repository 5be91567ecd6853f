"""Background loading the process must not finalize under: the one-shot's SDK preimport and the
REPL's warm-up.

They run in daemon threads so a quick answer never waits for them. But a daemon thread still
importing (an SDK, its C extensions) while the interpreter finalizes can crash it: the
interpreter tears down modules and thread states under the import, and an early error
(`-f /dev/zero`) ended in SIGSEGV in about 1 run in 200 (#28.1). So when the process ends
while one is still `busy`, it `leave`s: the output flushed, then `os._exit`, with no
finalization to race with the thread. Waiting for the thread instead cost an early error up to
the whole import (3 s for anthropic's on a loaded machine), for nothing the finalization does
that matters here: the log commits each turn as it ends, MCP servers are stopped by their
front end, and the one exit handler registered, logging's, is run by `leave`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

_threads: list[threading.Thread] = []
_lock = threading.Lock()


def start(target: Callable[..., Any], *args: Any, name: str) -> None:
    """Run `target(*args)` in a daemon thread that the process's end knows about (`busy`)."""
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    with _lock:
        _threads[:] = [t for t in _threads if t.is_alive()]
        _threads.append(thread)
    thread.start()


def busy() -> bool:
    """Whether a background load is still running."""
    with _lock:
        return any(t.is_alive() for t in _threads)


def leave(code: int) -> None:
    """End the process now with `code`, without the interpreter's finalization (a background load
    is still running): what the exit would have done that matters is done here first."""
    logging.shutdown()  # flushes a --debug log file
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
