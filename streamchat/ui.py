"""The one owner of stderr: error, notice and warning lines, streamed reasoning, and a status line.

One `UI` per process is passed down to every sink and front end. The status line (the
spinner) is transient: it is erased before any other stderr output and drawn again
after it, so a notice never lands on the spinner's line.
"""

from __future__ import annotations

import os
import threading
import time
import traceback as _traceback
from collections.abc import Callable
from typing import IO, Any

from streamchat.environment import Environment
from streamchat.errors import redact
from streamchat.events import Outcome, TurnResult
from streamchat.render.sanitize import sanitize

_DIM, _RED, _BOLD, _RESET = "\x1b[2m", "\x1b[31m", "\x1b[1m", "\x1b[0m"
_CLEAR_LINE = "\r\x1b[2K"
FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


def byte_size(n: int) -> str:
    """A size for a message: 512 B, 3.4 KB, 1.2 MB."""
    if n < 1024:
        return f"{n} B"
    size = float(n)
    for unit in ("KB", "MB", "GB"):
        size /= 1024
        if size < 1024 or unit == "GB":
            break
    return f"{size:.1f} {unit}"


def plural(n: int, word: str) -> str:
    """`1 turn`, `2 turns`: for the REPL's notices and `access usage`'s table."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def discard_typeahead(stream: IO[Any] | None) -> None:
    """Drop what was typed before a question showed (a terminal's pending input): a line typed while
    the answer streamed must not answer a prompt its typist never saw — a `y` approving a tool call,
    an `e` executing a command."""
    try:
        import termios
    except ImportError:  # no termios (Windows)
        return
    try:
        if stream is not None and os.isatty(fd := stream.fileno()):
            termios.tcflush(fd, termios.TCIFLUSH)
    except (AttributeError, ValueError, OSError, termios.error):  # not a file, closed, not a terminal
        pass


def exact_choice(reply: str, choices: dict[str, str], enter: str) -> str | None:
    """The choice a reply to a menu names: one key or the whole word (any case), `enter` for an empty
    reply, None for anything else. Only an exact answer acts: "explain it please" must not execute,
    nor "yes, but…" approve (#28.2, #35.3)."""
    word = reply.strip().lower()
    if not word:
        return enter
    return next((name for key, name in choices.items() if word in (key, name)), None)


class UI:
    def __init__(self, env: Environment) -> None:
        self.env = env
        self.styled = env.stderr_styled()
        self.live = env.stderr_isatty and not env.dumb  # a status line can be drawn and erased
        self._lock = threading.RLock()
        self._status: str | None = None  # the status line's text while it is shown
        self._mid_line = False  # streamed text (reasoning) left the cursor mid-line

    # -- raw output ------------------------------------------------------------------------
    def _emit(self, text: str) -> None:
        try:
            self.env.stderr.write(text)
            self.env.stderr.flush()
        except (OSError, ValueError):
            pass

    def _line(self, text: str) -> None:
        """A permanent line: erase the status line, write, draw the status line again."""
        with self._lock:
            prefix = _CLEAR_LINE if self._status is not None else ("\n" if self._mid_line else "")
            self._mid_line = False
            self._emit(prefix + text + "\n" + (self._status or ""))

    def write(self, text: str) -> None:
        """Streamed text on stderr (reasoning): not line-based, so the status line goes first."""
        if not text:
            return
        with self._lock:
            if self._status is not None:
                self._emit(_CLEAR_LINE)
                self._status = None
            self._emit(text)
            self._mid_line = not text.endswith("\n")

    def prompt(self, text: str) -> None:
        """A question on stderr, the answer typed after it on the same line; keys typed before it
        showed are dropped first, so only an answer to this question answers it."""
        discard_typeahead(self.env.stdin)
        with self._lock:
            prefix = _CLEAR_LINE if self._status is not None else ("\n" if self._mid_line else "")
            self._status, self._mid_line = None, False
            self._emit(prefix + (f"{_BOLD}{text}{_RESET}" if self.styled else text))

    def ask(self, text: str) -> str:
        """`prompt(text)`, then the line typed on stdin (a terminal); EOFError at the end of input."""
        from streamchat.typeahead import released

        self.prompt(text)
        stdin = self.env.stdin
        try:
            with released():  # the REPL holds keys during a turn: echo and line editing back for the answer
                line = stdin.readline() if stdin is not None else ""
        except KeyboardInterrupt:
            self.write("\n")  # the terminal echoed ^C on the prompt's line: what follows starts below it
            raise
        if not line:
            raise EOFError
        return str(line)

    # -- status line -----------------------------------------------------------------------
    def status(self, text: str | None) -> None:
        """Show `text` on the transient status line, or erase it (None). Terminals only."""
        if not self.live:
            return
        with self._lock:
            if text is None and self._status is None:
                return
            self._status = text
            self._emit(_CLEAR_LINE + (text or ""))

    def spinner(self, label: str) -> Spinner:
        return Spinner(self, label)

    def warm_up(self) -> None:
        """Import and exercise the Markdown renderer once, so the first answer does not pay for it
        (the REPL's warm-up thread calls it)."""
        from streamchat.render.markdown_stream import LineRenderer, parse

        LineRenderer().render(parse("# x\n\n*y* `z`\n\n```python\nx = 1\n```\n\n1. a\n"), 40)

    # -- messages --------------------------------------------------------------------------
    def error(self, message: str) -> None:
        # error lines quote upstream text (a server's error message): no escape sequence of theirs gets through
        one_line = sanitize(redact(" ".join(message.split("\n"))))
        self._line(f"{_BOLD}{_RED}error:{_RESET} {one_line}" if self.styled else f"error: {one_line}")

    def dim(self, text: str) -> str:
        return f"{_DIM}{text}{_RESET}" if self.styled else text

    def notice(self, message: str) -> None:
        # notices quote what others wrote (a server's error in a retry line, a route's failure, file
        # names): sanitized here, once for every caller
        self._line(self.dim(sanitize(message)))

    def notice_bold(self, label: str, text: str) -> None:
        """A notice whose `text` stands out in bold (a shell command to approve); both sanitized."""
        if self.styled:
            self._line(self.dim(f"{sanitize(label)}{_BOLD}{sanitize(text)}{_RESET}"))
        else:
            self.notice(label + text)

    warn = notice

    def traceback(self, exc: BaseException) -> None:
        """--debug only: the full traceback, with anything key-like redacted."""
        self._line(redact("".join(_traceback.format_exception(exc))).rstrip("\n"))


class RoutedUI(UI):
    """A UI whose lines go to `line`, not to stderr, with no status line and no streamed text: a race
    lane's (its retry notice belongs in its own pane, and a spinner or reasoning on stderr would tear
    the live view of the others)."""

    def __init__(self, env: Environment, line: Callable[[str], None]) -> None:
        super().__init__(env)
        self.live = False
        self._route = line

    def _line(self, text: str) -> None:
        self._route(text)

    def write(self, text: str) -> None:
        pass


class Spinner:
    """Frames and elapsed time on the UI's status line, from a thread; `stop()` erases it."""

    def __init__(self, ui: UI, label: str, *, delay: float = 0.1) -> None:
        self.ui = ui
        self.label = label
        self.delay = delay
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0

    def start(self) -> Spinner:
        if self.ui.live and self._thread is None:
            self._started = time.monotonic()
            self._thread = threading.Thread(target=self._run, name="spinner", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        i = 0
        while not self._stop.wait(self.delay if i else self.delay * 2):
            elapsed = time.monotonic() - self._started
            with self.ui._lock:
                if self._stop.is_set():
                    return
                self.ui.status(f"{FRAMES[i % len(FRAMES)]} {self.label} {elapsed:.1f}s")
            i += 1

    def stop(self) -> None:
        """Stop and erase the line; safe to call twice and from a Ctrl-C handler."""
        with self.ui._lock:
            if not self._stop.is_set():
                self._stop.set()
                if self._thread is not None:
                    self.ui.status(None)

    def __enter__(self) -> Spinner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def report_end(result: TurnResult, ui: UI, debug: bool, more: str = "--continue-answer", *, repl: bool = False) -> None:
    """One line on stderr when a turn did not end well: failed (with --debug the traceback
    first), or cut off by the token limit, which otherwise looks like a complete answer (`more`:
    how this front end continues it; `repl`: hints in the REPL's words, StreamchatError.said)."""
    if result.cut_off:
        ui.notice(f"[cut off at the token limit ({result.stats.tokens} tokens) — {more} continues it, "
                  f"{'/set max_tokens N' if repl else '--max-tokens'} raises the limit]")
    if result.outcome is not Outcome.FAILED or result.error is None:
        return
    if debug:
        ui.traceback(result.error.__cause__ or result.error)
    ui.error(result.error.said(repl=repl))
