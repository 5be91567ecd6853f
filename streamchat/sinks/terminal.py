"""The live terminal sink: committed Markdown above a small repainted region.

Finished blocks are printed once and left to the terminal's scrollback; only the open
block is repainted, on a timer (≤ 30 fps, the first text at once), never taller than
the screen. Model text is sanitized before it is parsed, so only our own escape
sequences reach the terminal.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Callable

from rich.cells import cell_len

from streamchat.environment import Environment
from streamchat.events import Event, Outcome, ReasoningDelta, TextDelta, ToolCall, TurnResult
from streamchat.render.markdown_stream import ColorSystem, LineRenderer, MarkdownStream
from streamchat.render.sanitize import sanitize
from streamchat.sinks._output import Output
from streamchat.sinks._reasoning import ReasoningOutput
from streamchat.ui import UI

FRAME_INTERVAL = 1 / 30
STALL_NOTICE_S = 1.5  # silence mid-answer before a quiet "waiting" appears on the status line
ANSI_SGR = re.compile(r"\x1b\[[0-9;]*m")
CSI = "\x1b["
SYNC_START, SYNC_END = "\x1b[?2026h", "\x1b[?2026l"  # synchronized output; ignored where unknown
HIDE_CURSOR, SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"
RESET = "\x1b[0m"


def color_system_for(env: Environment) -> ColorSystem | None:
    """NO_COLOR asks for no color, not for no bold or underline: Rich's no_color keeps the attributes."""
    if env.no_color:
        return "standard"
    colorterm = env.environ.get("COLORTERM", "")
    if colorterm in ("truecolor", "24bit"):
        return "truecolor"
    return "256" if "256" in env.environ.get("TERM", "") else "standard"


def _terminal_size(env: Environment) -> tuple[int, int]:
    """The size of the terminal stdout is on (not of whatever COLUMNS/LINES claim)."""
    try:
        size = os.get_terminal_size(env.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        size = shutil.get_terminal_size()
    return max(20, size.columns), max(3, size.lines)


_TRAILING_PAD = re.compile(r"(?:\x1b\[[0-9;]*m| )+$")


_SEGMENT = re.compile(r"\x1b\[([0-9;]*)m")


_Style = tuple["str | None", "str | None", frozenset[int]]  # foreground, background, flags (bold, italic…)
_PLAIN: _Style = (None, None, frozenset())
_FLAG_OFF = {1: 22, 2: 22, 3: 23, 4: 24, 5: 25, 7: 27, 8: 28, 9: 29}


def _style(params: str) -> _Style | None:
    """SGR parameters (from the plain state) as a style; None for codes this does not model."""
    fg: str | None = None
    bg: str | None = None
    flags: set[int] = set()
    codes = params.split(";")
    i = 0
    while i < len(codes):
        code = codes[i]
        if not code.isdigit():
            return None
        n = int(code)
        if n == 0:
            fg, bg, flags = None, None, set()
        elif n in _FLAG_OFF:
            flags.add(n)
        elif n in (38, 48):  # 38;5;N / 38;2;R;G;B
            size = 3 if codes[i + 1 : i + 2] == ["5"] else 5 if codes[i + 1 : i + 2] == ["2"] else 0
            if not size or len(codes) < i + size:
                return None
            value = ";".join(codes[i : i + size])
            fg, bg = (value, bg) if n == 38 else (fg, value)
            i += size - 1
        elif 30 <= n <= 37 or 90 <= n <= 97:
            fg = code
        elif 40 <= n <= 47 or 100 <= n <= 107:
            bg = code
        elif n == 39:
            fg = None
        elif n == 49:
            bg = None
        else:
            return None
        i += 1
    return fg, bg, frozenset(flags)


def _transition(old: _Style, new: _Style, params: str) -> str:
    """The shortest sequence from style `old` to `new` (given in full as `params`): only what
    changed (a code block's background is not repeated at every token), or a reset and the whole."""
    full = f"\x1b[0;{params}m" if params else RESET
    if new == _PLAIN:
        return RESET
    offs = sorted({_FLAG_OFF[f] for f in old[2] - new[2]})
    restore = new[2] & {1, 2} if 22 in offs else frozenset()  # 22 clears bold and dim together
    codes = [str(c) for c in offs] + [str(f) for f in sorted((new[2] - old[2]) | restore)]
    if new[0] != old[0]:
        codes.append(new[0] or "39")
    if new[1] != old[1]:
        codes.append(new[1] or "49")
    if not codes:  # the same cells under other codes (`1` then `1;1`): nothing to write
        return ""
    diff = f"\x1b[{';'.join(codes)}m"
    return diff if len(diff) < len(full) else full


def _compact(line: str) -> str:
    """Rich styles each segment on its own (`ESC[97;40mtext ESC[0m`); consecutive segments of one
    style become one run, and a change of style writes only what changed — the same cells, fewer bytes."""
    if "\x1b[" not in line:
        return line
    out: list[str] = []
    current = ""  # the style in effect ("" = none), as parameters
    state: _Style | None = _PLAIN  # ...and as a style (None: not modelled, so changes are written whole)
    pending = ""  # the style Rich asked for next
    pos = 0

    def switch() -> None:
        nonlocal current, state
        target = _style(pending) if pending else _PLAIN
        if state is None or target is None:
            out.append(f"\x1b[0;{pending}m" if pending else RESET)
        else:
            out.append(_transition(state, target, pending))
        current, state = pending, target

    for match in _SEGMENT.finditer(line):
        text = line[pos : match.start()]
        if text:
            if pending != current:
                switch()
            out.append(text)
        params = match.group(1)
        if params in ("", "0"):
            pending = ""
        else:  # styles given back to back, with no text between them, add up
            pending = f"{pending};{params}" if pending and not text and pending != current else params
        pos = match.end()
    if line[pos:]:
        if pending != current:
            switch()
        out.append(line[pos:])
    if current:
        out.append(RESET)
    return "".join(out)


def _trim(line: str) -> str:
    """Drop Rich's padding to the full width: a row that ends early never sits in the wrap
    column, so a terminal that re-wraps on resize (tmux, VTE…) has nothing to join to the
    next row when the window widens again (seen as two code lines side by side)."""
    match = _TRAILING_PAD.search(line)
    if match is None:
        return line
    return line[: match.start()] + (RESET if "\x1b[" in line else "")


class LiveRegion:
    """Paints lines at the bottom of the terminal and commits lines above it.

    The cursor always rests at the start of the line below the region, so a repaint is:
    up N rows, clear to the end of the screen, write committed lines, write live lines.
    N counts screen rows, not lines: after the window narrows, a reflowing terminal
    (tmux, VTE, kitty, iTerm2, WezTerm, Alacritty, Konsole) has re-wrapped each line
    wider than the new width onto several rows; xterm truncates them instead.
    """

    def __init__(self, write: Callable[[str], None], *, reflow: bool = True) -> None:
        self.write = write
        self.reflow = reflow
        self.height = 0  # lines in the live region
        self._lines: list[str] = []  # as written, to repaint only what changed
        self._cells: list[int] = []  # their widths on screen
        self.width = 0
        self._painted_width = 0

    def rows(self) -> int:
        """Screen rows the live region occupies now, at the current width."""
        return self._rows(self._cells)

    def _rows(self, cells: list[int]) -> int:
        if not self.reflow or not self.width:
            return len(cells)
        return sum(max(1, -(-n // self.width)) for n in cells)

    def paint(self, commit: list[str], live: list[str], width: int) -> None:
        """Bring the screen from the last paint to `commit` + `live`, writing only what changed.

        Rows equal to the last paint are skipped (the cursor moves over them); the rest is
        rewritten and the screen below cleared. After a width change every row is rewritten. No erase-display is ever issued
        from the top-left corner: tmux (like xterm with some settings) copies a whole-screen
        clear into the scrollback, which would duplicate the region once it sits at the top.
        """
        self.width = width
        new = [_compact(_trim(line)) for line in (*commit, *live)]
        cells = [cell_len(ANSI_SGR.sub("", line)) for line in new]
        old, old_cells = self._lines, self._cells
        aligned = width == self._painted_width  # each old line still sits on its own row
        same = 0
        if aligned:
            while same < min(len(old), len(new)) and old[same] == new[same]:
                same += 1
        self._painted_width = width
        self.height = len(live)
        self._lines, self._cells = new[len(commit):], cells[len(commit):]
        if same == len(old) == len(new):
            return  # nothing changed on screen
        up = self._rows(old_cells[same:])
        parts = [SYNC_START]
        if up:
            parts.append(f"\r{CSI}{up}A")
        if not new:  # nothing to draw: blank the old rows one by one, then come back up
            parts.append(f"{CSI}2K" + f"{CSI}1B{CSI}2K" * (up - 1) + (f"{CSI}{up - 1}A" if up > 1 else ""))
        else:
            for row, (line, n) in enumerate(zip(new[same:], cells[same:], strict=True), start=same):
                # erase the rest of the row only if what was painted there was wider
                stale = not aligned or (row < len(old_cells) and old_cells[row] > n)
                parts.append(self._line(line, n, width, stale))
            if not aligned or len(old) > len(new):  # old rows left below the new ones
                parts.append(f"{CSI}J")
        parts.append(SYNC_END)
        self.write("".join(parts))

    @staticmethod
    def _line(line: str, cells: int, width: int, stale: bool) -> str:
        # Erase the rest of a short line over wider old text; a full-width line must not get EL,
        # which would erase its last cell while the cursor waits in the wrap column.
        return line + (f"{CSI}K\n" if stale and cells < width else "\n")

    def resized(self, width: int) -> None:
        """The terminal changed width: rows() now counts re-wrapped lines."""
        self.width = width


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
        self.size = size or (lambda: _terminal_size(env))
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
        self._commit(["\x1b[2m[interrupted]\x1b[0m"] if result.outcome is Outcome.INTERRUPTED else [])
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
        self.reasoning = ReasoningOutput(self.ui)
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
