"""SIGTERM and SIGHUP end a turn the way Ctrl-C does: the upstream stream is closed, the
partial answer stays printed and is saved, marked interrupted; the exit code is 128+N.

Once a turn is ending (its first signal came, or its answer is complete), further signals are
held until the answer is saved: a second Ctrl-C, or a SIGTERM right behind the first one,
raised again inside the closing and the saving, and the whole turn was lost (#35.10). A held
SIGTERM or SIGHUP still counts (the exit code, the REPL quits after the save); a held Ctrl-C
is dropped, as the turn it would stop is already stopping.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from streamchat.exit_status import ExitStatus

HANDLED = (signal.SIGTERM, signal.SIGHUP)
_received: int | None = None
_in_turn = False  # inside `turn()`
_ending = False  # ...and the turn is ending: signals are noted, not raised
_interrupted = False  # this turn was stopped by Ctrl-C


class Terminated(KeyboardInterrupt):
    """Raised in the main thread by a SIGTERM or SIGHUP handler."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _handler(signum: int, _frame: FrameType | None) -> None:
    global _received, _ending
    if _received is None:
        _received = signum
    if _ending:
        return
    _ending = _in_turn
    raise Terminated(signum)


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    """Ctrl-C during a turn: KeyboardInterrupt, once."""
    global _ending, _interrupted
    if _ending:
        return
    _ending = _interrupted = True
    raise KeyboardInterrupt


def _after_interrupt(_signum: int, _frame: FrameType | None) -> None:
    """A second Ctrl-C that reaches the process after the turn it was pressed in has ended.

    The terminal is in cooked mode until the next prompt takes it, so a key pressed twice
    becomes a SIGINT whenever the line discipline gets to it: on a loaded machine, after the
    turn. Raised there, it landed inside asyncio building prompt_toolkit's loop, and the half-made
    loop printed a traceback when collected. It is dropped; the REPL's prompt (or the one-shot's
    exit) is next, and the REPL sets the default handler again when a line is read."""


def after_prompt() -> None:
    """The REPL read a line: Ctrl-C raises KeyboardInterrupt again while its command runs."""
    if _main_thread():
        with contextlib.suppress(ValueError, OSError):
            signal.signal(signal.SIGINT, signal.default_int_handler)


def install() -> None:
    if not _main_thread():
        return
    for sig in HANDLED:
        with contextlib.suppress(ValueError, OSError):
            signal.signal(sig, _handler)


@contextlib.contextmanager
def turn() -> Iterator[None]:
    """Around one turn, from its request to its save: the first signal interrupts it, and
    from then on (or from `ending()`) the others wait for the end of this block."""
    global _in_turn, _ending, _interrupted
    if not _main_thread() or _in_turn:
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    with contextlib.suppress(ValueError, OSError):
        signal.signal(signal.SIGINT, _interrupt)
    _in_turn, _ending, _interrupted = True, False, False
    try:
        yield
    finally:
        _in_turn = _ending = False
        with contextlib.suppress(ValueError, OSError, TypeError):
            signal.signal(signal.SIGINT, _after_interrupt if _interrupted else previous)


def ending() -> None:
    """The turn's answer is complete: a signal now waits until it is saved. Only the main thread's
    turn: a race's lane ending on its thread must not hold the signal that stops the others."""
    global _ending
    if _main_thread():
        _ending = _in_turn


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def received() -> int | None:
    """The terminating signal this process got, if any."""
    return _received


def exit_code(interrupted: ExitStatus) -> ExitStatus:
    """128 + the signal for SIGTERM/SIGHUP (a member each), else `interrupted` (Ctrl-C's 130)."""
    return ExitStatus(128 + _received) if _received is not None else interrupted
