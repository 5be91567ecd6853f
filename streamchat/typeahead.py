"""Keys typed while an answer streams: held for the next prompt, never drawn into the answer.

In the terminal's normal (cooked) mode the kernel echoes every key as it is typed, so letters
typed during a stream landed inside the rendered answer, and a live Markdown redraw whose
cursor they had moved drew a code line twice. While a turn runs, echo and line editing are
off: the keys wait in the terminal's input queue, and the next prompt-toolkit prompt reads
them as if they were typed there. Ctrl-C still interrupts (signals stay on), and the keys typed
before it stay queued too (NOFLSH).
"""

from __future__ import annotations

import contextlib
import termios
from collections.abc import Iterator
from typing import IO, Any

_held: tuple[int, list[Any]] | None = None  # the terminal and its own settings, while keys are held


def _quiet(saved: list[Any]) -> list[Any]:
    """`saved` without echo, line editing or CR→NL (Enter reaches the prompt as Enter)."""
    quiet = [*saved[:6], list(saved[6])]
    quiet[0] &= ~termios.ICRNL  # iflag
    quiet[3] &= ~(termios.ECHO | termios.ICANON | termios.IEXTEN)  # lflag; ISIG stays: Ctrl-C
    # NOFLSH: the kernel flushes its input queue when Ctrl-C sends SIGINT, which dropped the keys
    # typed ahead exactly when a long answer is stopped to ask the next question
    quiet[3] |= termios.NOFLSH
    quiet[6][termios.VMIN], quiet[6][termios.VTIME] = 1, 0
    return quiet


@contextlib.contextmanager
def held(stdin: IO[Any] | None) -> Iterator[None]:
    """Hold typed keys for the next prompt while the block runs (a no-op unless stdin is a terminal)."""
    global _held
    try:
        fd = stdin.fileno() if stdin is not None and stdin.isatty() else -1
        saved = termios.tcgetattr(fd) if fd >= 0 else None
    except (OSError, ValueError, termios.error):
        saved = None
    if saved is None or _held is not None:
        yield
        return
    termios.tcsetattr(fd, termios.TCSANOW, _quiet(saved))  # TCSANOW: no flush, the typed keys stay queued
    _held = (fd, saved)
    try:
        yield
    finally:
        _held = None
        with contextlib.suppress(termios.error, OSError):
            termios.tcsetattr(fd, termios.TCSANOW, saved)


@contextlib.contextmanager
def released() -> Iterator[None]:
    """The terminal's own settings (echo, line editing) for a question asked mid-turn, e.g. a tool approval."""
    if _held is None:
        yield
        return
    fd, saved = _held
    quiet = termios.tcgetattr(fd)
    termios.tcsetattr(fd, termios.TCSANOW, saved)
    try:
        yield
    finally:
        with contextlib.suppress(termios.error, OSError):
            termios.tcsetattr(fd, termios.TCSANOW, quiet)
