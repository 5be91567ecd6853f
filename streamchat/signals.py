"""SIGTERM and SIGHUP end a turn the way Ctrl-C does: the upstream stream is closed, the
partial answer stays printed and is saved, marked interrupted; the exit code is 128+N."""

from __future__ import annotations

import contextlib
import signal
import threading
from types import FrameType

from streamchat.exit_status import ExitStatus

HANDLED = (signal.SIGTERM, signal.SIGHUP)
_received: int | None = None


class Terminated(KeyboardInterrupt):
    """Raised in the main thread by a SIGTERM or SIGHUP handler."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _handler(signum: int, _frame: FrameType | None) -> None:
    global _received
    _received = signum
    raise Terminated(signum)


def install() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in HANDLED:
        with contextlib.suppress(ValueError, OSError):
            signal.signal(sig, _handler)


def received() -> int | None:
    """The terminating signal this process got, if any."""
    return _received


def exit_code(interrupted: ExitStatus) -> ExitStatus:
    """128 + the signal for SIGTERM/SIGHUP (a member each), else `interrupted` (Ctrl-C's 130)."""
    return ExitStatus(128 + _received) if _received is not None else interrupted
