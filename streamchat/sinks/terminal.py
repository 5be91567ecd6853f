"""The live terminal sink: committed Markdown above a small repainted region.

Finished blocks are printed once and left to the terminal's scrollback; only the open
block is repainted, on a timer (≤ 30 fps, the first text at once), never taller than
the screen. Model text is sanitized before it is parsed, so only our own escape
sequences reach the terminal.

The region itself (what to repaint, counted in screen rows) is `live_region.py`; the bytes
each line is written with are made smaller by `render/ansi.py`.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable

from streamchat.environment import Environment
from streamchat.events import Event, Outcome, ReasoningDelta, TextDelta, ToolCall, TurnResult
from streamchat.render.markdown_stream import ColorSystem, LineRenderer, MarkdownStream
from streamchat.render.sanitize import sanitize
from streamchat.sinks._output import Output
from streamchat.sinks._reasoning import ReasoningOutput
from streamchat.sinks.live_region import LiveRegion, terminal_size
from streamchat.ui import UI

FRAME_INTERVAL = 1 / 30
STALL_NOTICE_S = 1.5  # silence mid-answer before a quiet "waiting" appears on the status line
HIDE_CURSOR, SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"


def color_system_for(env: Environment) -> ColorSystem | None:
    """NO_COLOR asks for no color, not for no bold or underline: Rich's no_color keeps the attributes."""
    if env.no_color:
        return "standard"
    colorterm = env.environ.get("COLORTERM", "")
    if colorterm in ("truecolor", "24bit"):
        return "truecolor"
    return "256" if "256" in env.environ.get("TERM", "") else "standard"


class MarkdownSink:
    """The default sink on a terminal. `size`, `timer` and `clock` are seams for tests and
    the benchmark (an in-memory terminal with a simulated clock)."""

    def __init__(self, env: Environment, ui: UI, *, stats: bool = False,
                 size: Callable[[], tuple[int, int]] | None = None, timer: bool = True,
                 clock: Callable[[], float] = time.monotonic, code_theme: str | None = None) -> None:
        self.env = env
        self.code_theme = code_theme
        self.out = Output(env.stdout)
        self.ui = ui
        self.stats = stats
        self.size = size or (lambda: terminal_size(env))
        self.clock = clock
        # xterm truncates lines when the window narrows; the others re-wrap them
        self.region = LiveRegion(self.out.write, reflow="XTERM_VERSION" not in env.environ)
        self._lock = threading.RLock()
        self._dirty = False
        self._last_paint = float("-inf")
        self._width, self._height = self.size()
        self._use_timer = timer
        self._old_winch: signal._HANDLER = None
        self._start_step()
        self._resized = False
        self._last_text = 0.0
        self._stall_shown = -1  # whole seconds shown in the stall notice, -1 when none
        self._winch_installed = False

    # -- sink protocol -------------------------------------------------------------------
    def begin(self) -> None:
        """A request is about to be sent (again after each tool step): wait with a spinner."""
        self.spinner.start()
        if not self._winch_installed:
            self._install_winch()
            self._winch_installed = True

    def feed(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            self._on_text(sanitize(event.text))
        elif isinstance(event, ReasoningDelta):
            self.spinner.stop()
            self.reasoning.write(event.text)
        elif isinstance(event, ToolCall):
            self._next_step()

    def end(self, result: TurnResult) -> None:
        self._restore_winch()
        marker = "\x1b[2m[interrupted]\x1b[0m" if self.env.stdout_styled() else "[interrupted]"
        self._commit([marker] if result.outcome is Outcome.INTERRUPTED else [])
        if self.stats:
            self.ui.notice(result.stats.summary())

    def _commit(self, extra: list[str]) -> None:
        """Stop the timer and print what is left: the live region becomes permanent lines."""
        self._stop.set()
        self.spinner.stop()
        if self._stall_shown >= 0:
            self._stall_shown = -1
            self.ui.status(None)
        with self._lock:
            self.reasoning.close()
            self.region.paint(self.stream.finish(self._width) + extra, [], self._width)
            if self.reasoning.answer_started:  # the cursor was hidden at the first text
                self.out.write(SHOW_CURSOR)
        self.reasoning.finish()

    def _next_step(self) -> None:
        """A tool call ends a step: its text is committed, so the call lines and the approval
        prompt print below it, and the next step's answer renders as a fresh document."""
        self._commit([])
        with self._lock:
            self._start_step()

    def _start_step(self) -> None:
        """What each step of a turn renders afresh: the document, reasoning, spinner, repaint timer."""
        self.stream = MarkdownStream(LineRenderer(color_system=color_system_for(self.env), no_color=self.env.no_color,
                                                  code_theme=self.code_theme))
        self.reasoning = ReasoningOutput(self.ui, width=lambda: self.size()[0])
        self.spinner = self.ui.spinner("waiting")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- text ----------------------------------------------------------------------------
    def _on_text(self, text: str) -> None:
        with self._lock:
            if not self.reasoning.answer_started:
                self.spinner.stop()
                self.reasoning.answer_begins()
                self.out.write(HIDE_CURSOR)
                self._start_timer()
            self._last_text = self.clock()
            if self._stall_shown >= 0:
                self._stall_shown = -1
                self.ui.status(None)
            self.stream.append(text)
            self._dirty = True
            if self._until_next_frame() <= 0:
                self._paint()

    def _paint(self) -> None:
        """Repaint now (caller holds the lock), at the terminal's size read at this moment.

        The size is read on every paint (one ioctl), not only after SIGWINCH: the handler runs
        in the main thread, which may sit in a socket read while the timer thread paints, and
        a region painted at a stale width is re-wrapped by the terminal and then miscounted.
        """
        self._resized = False
        self._set_size(*self.size())
        self._dirty = False
        self._last_paint = self.clock()
        commit, live = self.stream.update(self._width, max(1, self._height - 2))
        self.region.paint(commit, live, self._width)

    def flush(self) -> None:
        """Paint pending text and pending resizes; called by the repaint timer. After
        STALL_NOTICE_S of silence mid-answer, a waiting note on stderr's status line (the row
        below the live region, erased by the next paint)."""
        with self._lock:
            if self._resized or (self._dirty and self._until_next_frame() <= 0):
                self._paint()
            silent = self.clock() - self._last_text
            if self.reasoning.answer_started and silent >= STALL_NOTICE_S and int(silent) != self._stall_shown:
                self._stall_shown = int(silent)
                self.ui.status(self.ui.dim(f"… waiting for more ({self._stall_shown} s)"))

    def _until_next_frame(self) -> float:
        return self._last_paint + FRAME_INTERVAL - self.clock()

    def _start_timer(self) -> None:
        if not self._use_timer or self._thread is not None:
            return

        stop = self._stop  # this step's: the next step has its own

        def tick() -> None:
            # wake when the next frame is due: the main thread also paints as text arrives, and
            # a timer on its own beat would add its frames to those (up to twice the frame rate)
            while not stop.wait(max(0.002, self._until_next_frame()) if self._dirty else FRAME_INTERVAL):
                with contextlib.suppress(Exception):
                    self.flush()

        self._thread = threading.Thread(target=tick, name="repaint", daemon=True)
        self._thread.start()

    # -- resize --------------------------------------------------------------------------
    def resize(self, width: int, height: int) -> None:
        """Re-flow the live region at the new size (committed lines stay as printed)."""
        with self._lock:
            self._set_size(width, height)
            self._paint()

    def _set_size(self, width: int, height: int) -> None:
        if (width, height) != (self._width, self._height):
            self._width, self._height = width, height
            self.region.resized(width)

    def _install_winch(self) -> None:
        if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGWINCH"):
            return

        def on_winch(_sig: int, _frame: object) -> None:
            self._resized = True  # the next paint (or the timer) re-flows; a handler must not paint

        with contextlib.suppress(ValueError, OSError):
            self._old_winch = signal.signal(signal.SIGWINCH, on_winch)

    def _restore_winch(self) -> None:
        if self._old_winch is not None:
            with contextlib.suppress(ValueError, OSError):
                signal.signal(signal.SIGWINCH, self._old_winch)
            self._old_winch = None
