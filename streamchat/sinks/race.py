"""Where a race's answers go: a live view of every answer at once on a terminal, each answer
whole and in -m order in a pipe, tagged events with --json.

Each output hands a sink to every lane (`sink(i)`, fed from that lane's thread) and a UI for its
notices (`ui(i)`); `close()` runs once every lane has ended.

The terminal view composes the single-turn renderer's parts: each answer is a `MarkdownStream`
(its text sanitized first), `render/lanes.py` lays the answers out as columns or stacked panes,
and one `LiveRegion` paints the whole on a repaint thread (≤ 30 frames a second). Nothing is
committed while the answers stream, so no column is cut mid-answer; at the end the region is
replaced by every answer in full, printed once, which is what the scrollback keeps.
"""

from __future__ import annotations

import contextlib
import textwrap
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from streamchat.environment import Environment
from streamchat.errors import OutputClosed
from streamchat.events import Event, Outcome, ReasoningDelta, Sink, TextDelta, TurnResult
from streamchat.render import lanes
from streamchat.render.ansi import ANSI_SGR
from streamchat.render.markdown_stream import LineRenderer, MarkdownStream, render_static
from streamchat.render.sanitize import sanitize
from streamchat.schema import dump
from streamchat.sinks._output import Output
from streamchat.sinks.live_region import LiveRegion, terminal_size
from streamchat.sinks.terminal import FRAME_INTERVAL, HIDE_CURSOR, SHOW_CURSOR, color_system_for
from streamchat.ui import UI, RoutedUI

if TYPE_CHECKING:
    from streamchat.structured import DataOutput

RED = "\x1b[31m"
BOLD, DIM = lanes.BOLD, lanes.DIM
CLOCK_INTERVAL = 0.1  # how often a waiting pane's clock is repainted


class RaceOutput(Protocol):
    """Where a race's lanes stream (see the module's docstring)."""

    @property
    def closed(self) -> bool:
        """The reader closed stdout: the race should stop."""
        ...

    @property
    def shows_errors(self) -> bool:
        """A failed answer's error line is shown in its pane (else it goes to stderr)."""
        ...

    def sink(self, index: int) -> Sink: ...
    def ui(self, index: int) -> UI: ...
    def data(self, index: int) -> DataOutput:
        """--schema: where lane `index`'s attempts stream and its data goes."""
        ...

    def close(self) -> None: ...


def race_output(env: Environment, ui: UI, names: list[str], *, json: bool = False, markdown: bool = True,
                sanitize: bool = False, stats: bool = False, code_theme: str | None = None,
                repl: bool = False) -> RaceOutput:
    """The race's output, decided as `choose_sink` decides a turn's: events, a live terminal, or plain text
    (`repl`: a pane words its error's hint in REPL commands, StreamchatError.said)."""
    if json:
        return TaggedEvents(env, ui, names)
    if env.stdout_isatty and markdown and not env.dumb:
        return RaceView(env, names, code_theme=code_theme, repl=repl)
    return InOrder(env, ui, names, sanitize=sanitize or env.stdout_isatty, stats=stats)


def _prefixed(ui: UI, name: str) -> UI:
    """A lane's UI for plain output: its notices on stderr, naming the model."""
    return RoutedUI(ui.env, lambda line: ui.notice(f"{name}: {ANSI_SGR.sub('', line)}"))


class TaggedEvents:
    """--json: every lane's events as they come, each tagged with its `model` and `index`; one
    `done` or `error` per model."""

    closed = False
    shows_errors = False

    def __init__(self, env: Environment, ui: UI, names: list[str]) -> None:
        from streamchat.sinks.ndjson import NdjsonSink

        self.names, self.main_ui = names, ui
        self.sinks = [NdjsonSink(env, {"model": name, "index": i}) for i, name in enumerate(names)]

    def sink(self, index: int) -> Sink:
        return self.sinks[index]

    def ui(self, index: int) -> UI:
        return _prefixed(self.main_ui, self.names[index])

    def data(self, index: int) -> DataOutput:
        sink = self.sinks[index]
        return DataLane(lambda: sink, lambda data: sink.emit({"type": "data", "data": data}))

    def close(self) -> None:
        pass


class InOrder:
    """Pipes (and --no-markdown): each answer whole, in -m order, under a `## MODEL` line. The first
    streams at once; a later one waits its turn with what it sent held here, and streams from the
    moment the answers before it have ended."""

    def __init__(self, env: Environment, ui: UI, names: list[str], *, sanitize: bool = False,
                 stats: bool = False) -> None:
        from streamchat.sinks.plain import PlainSink

        self.names, self.main_ui = names, ui
        self.out = Output(env.stdout)
        self.sinks = [PlainSink(env, self.ui(i), sanitize=sanitize, stats=stats) for i in range(len(names))]
        self.held: list[list[Event]] = [[] for _ in names]
        self.ended: list[TurnResult | None] = [None] * len(names)
        self.current = -1  # the lane writing to stdout now (-1: none yet)
        self.closed = False
        self.shows_errors = False
        self._lock = threading.RLock()

    def sink(self, index: int) -> Sink:
        return _Lane(self._begin, lambda e: self._feed(index, e), lambda r: self._end(index, r))

    def ui(self, index: int) -> UI:
        return _prefixed(self.main_ui, self.names[index])

    def data(self, index: int) -> DataOutput:
        """Nothing of an attempt is written: the document that fits, as one compact line."""
        lane = self.sink(index)
        return DataLane(lambda: _Lane(lane.begin, lambda _e: None, lambda _r: None),
                        lambda data: lane.feed(TextDelta(dump(data, pretty=False))))

    def close(self) -> None:
        with self._lock:
            while 0 <= self.current < len(self.names) and self.ended[self.current] is not None:
                self._next()  # a lane that ended without its sink's end (failed before it began)

    def _guarded(self, write: Callable[[], None]) -> None:
        if self.closed:
            return
        try:
            write()
        except OutputClosed:
            self.closed = True

    def _enter(self, index: int) -> None:
        """Lane `index`'s turn: its header, then what it sent while it waited."""
        with self._lock:
            self.current = index
            self._guarded(lambda: self.out.write(("\n" if index else "") + f"## {self.names[index]}\n"))
            for event in self.held[index]:
                self._guarded(lambda e=event: self.sinks[index].feed(e))  # type: ignore[misc]
            self.held[index].clear()
            if self.ended[index] is not None:
                self._next()

    def _next(self) -> None:
        index = self.current
        result = self.ended[index]
        assert result is not None
        self._guarded(lambda: self.sinks[index].end(result))
        if index + 1 < len(self.names):
            self._enter(index + 1)
        else:
            self.current = len(self.names)

    def _begin(self) -> None:
        with self._lock:
            if self.current < 0:
                self._enter(0)  # the first answer's header as soon as anything is asked

    def _feed(self, index: int, event: Event) -> None:
        with self._lock:
            if self.current < 0:
                self._enter(0)
            if index == self.current:
                self._guarded(lambda: self.sinks[index].feed(event))
            else:
                self.held[index].append(event)

    def _end(self, index: int, result: TurnResult) -> None:
        with self._lock:
            self.ended[index] = result
            if self.current < 0:
                self._enter(0)
            elif index == self.current:
                self._next()


class _Lane:
    """A lane's sink: its events handed to the output that owns it."""

    def __init__(self, begin: Callable[[], None], feed: Callable[[Event], None],
                 end: Callable[[TurnResult], None]) -> None:
        self._begin, self._feed, self._end = begin, feed, end

    def begin(self) -> None:
        self._begin()

    def feed(self, event: Event) -> None:
        self._feed(event)

    def end(self, result: TurnResult) -> None:
        self._end(result)


class DataLane:
    """--schema in a race: each attempt streams into `preview()`'s sink, never ended there (the race
    ends the lane once, with the answer that fits or the failure); the data that fits goes to `accept`."""

    def __init__(self, preview: Callable[[], Sink], accept: Callable[[Any], None]) -> None:
        self._preview, self._accept = preview, accept

    def sink(self) -> Sink:
        shown = self._preview()
        return _Lane(shown.begin, shown.feed, lambda _result: None)

    def accept(self, data: Any) -> None:
        self._accept(data)

    def reject(self) -> None:
        pass

    def fail(self, message: str) -> None:
        pass  # the lane's end says it


class PaneState:
    """One answer of the live view: its text, rendered incrementally at the pane's width, and how it is doing."""

    def __init__(self, name: str, renderer: LineRenderer, clock: Callable[[], float], repl: bool = False) -> None:
        self.name, self.renderer, self.clock, self.repl = name, renderer, clock, repl
        self.text: list[str] = []
        self.started: float | None = None
        self.thinking = False
        self.note = ""  # the latest notice (a retry), until the answer ends
        self.result: TurnResult | None = None
        self._stream: MarkdownStream | None = None
        self._width = 0
        self._lines: list[str] = []  # committed by the stream, at _width
        self._live: list[str] | None = None  # the open block's lines, until more text comes
        self._fed = 0  # pieces of `text` given to the stream

    def restart(self, text: str = "") -> None:
        """The answer is now `text` (a --schema attempt starts over, or its data replaces it)."""
        self.text = [text] if text else []
        self._stream = None

    def body(self, width: int) -> list[str]:
        """The answer so far as lines at `width` (re-laid from the start after a resize)."""
        if self._stream is None or width != self._width:
            self._stream, self._width, self._lines, self._fed = MarkdownStream(self.renderer), width, [], 0
            self._live = None
        if self._fed < len(self.text) or self._live is None:  # another pane's text does not re-render this one
            self._stream.append("".join(self.text[self._fed:]))
            self._fed = len(self.text)
            commit, self._live = self._stream.update(width, 1 << 30)
            self._lines += commit
        return self._lines + self._live

    def whole(self, width: int) -> list[str]:
        """The whole answer at `width`, as a static render draws it (the region's last paint)."""
        return render_static("".join(self.text), width, self.renderer) if self.text else []

    def footer(self, width: int, style: bool) -> list[str]:
        result = self.result
        if result is None:
            if self.text:
                line = self.note or "…"
            else:
                waited = self.clock() - self.started if self.started is not None else 0.0
                line = f"{'thinking' if self.thinking else 'waiting'} {waited:.1f} s" + (f" · {self.note}" if self.note else "")
            return [lanes.styled(piece, DIM, style) for piece in lanes.pack(line.split(" · "), width)]
        if result.outcome is Outcome.FAILED:
            why = result.error.said(repl=self.repl) if result.error is not None else result.message
            message = sanitize(" ".join(why.split()))
            lines = textwrap.wrap(f"error: {message}", width)
            first = lines[0].removeprefix("error:")
            return [lanes.styled("error:", BOLD + RED, style) + first, *lines[1:]]
        said = result.stats.summary().split(" · ")
        if result.cut_off:
            said.append("cut off at the token limit")
        if not result.ok:
            said.insert(0, f"[{result.message}]")
        return [lanes.styled(piece, DIM, style) for piece in lanes.pack(said, width)]


class RaceView:
    """The terminal: every answer live at once (see the module's docstring). `size`, `timer` and
    `clock` are seams for tests, as in MarkdownSink."""

    closed = False
    shows_errors = True

    def __init__(self, env: Environment, names: list[str], *, size: Callable[[], tuple[int, int]] | None = None,
                 timer: bool = True, clock: Callable[[], float] = time.monotonic, code_theme: str | None = None,
                 repl: bool = False) -> None:
        self.env = env
        self.out = Output(env.stdout)
        self.size = size or (lambda: terminal_size(env))
        self.clock = clock
        self.region = LiveRegion(self.out.write, reflow="XTERM_VERSION" not in env.environ)
        self.style = env.stdout_styled()  # the view's own lines: none of our SGR under NO_COLOR
        renderer = LineRenderer(color_system=color_system_for(env), no_color=env.no_color, code_theme=code_theme)
        self.panes = [PaneState(name, renderer, clock, repl) for name in names]
        self._lock = threading.RLock()
        self._dirty = True
        self._painted_at = float("-inf")
        self._painted_size = (0, 0)
        self._cursor_hidden = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if timer:
            self._thread = threading.Thread(target=self._tick, name="race-repaint", daemon=True)
            self._thread.start()

    # -- the lanes ----------------------------------------------------------------------------
    def sink(self, index: int) -> Sink:
        pane = self.panes[index]

        def begin() -> None:
            with self._lock:
                if pane.started is None:
                    pane.started = self.clock()
                self._dirty = True

        def feed(event: Event) -> None:
            with self._lock:
                if isinstance(event, TextDelta):
                    pane.text.append(sanitize(event.text))
                elif isinstance(event, ReasoningDelta):  # not shown: the pane says it is thinking
                    pane.thinking = True
                else:
                    return
                self._dirty = True

        def end(result: TurnResult) -> None:
            with self._lock:
                pane.result = result
                self._dirty = True

        return _Lane(begin, feed, end)

    def ui(self, index: int) -> UI:
        pane = self.panes[index]

        def note(line: str) -> None:
            with self._lock:
                pane.note = sanitize(ANSI_SGR.sub("", line))
                self._dirty = True

        return RoutedUI(self.env, note)

    def data(self, index: int) -> DataOutput:
        """Each attempt streams afresh in the pane; the data that fits replaces it, indented JSON."""
        pane, lane = self.panes[index], self.sink(index)

        def show(text: str) -> None:
            with self._lock:
                pane.restart(text)
                self._dirty = True

        def preview() -> Sink:
            show("")
            return lane

        return DataLane(preview, lambda data: show(f"```json\n{sanitize(dump(data, pretty=True))}\n```\n"))

    # -- painting -----------------------------------------------------------------------------
    def _panes(self, width: int, *, final: bool) -> list[lanes.Pane]:
        inner = lanes.pane_width(width, len(self.panes))
        return [lanes.Pane(lanes.header(sanitize(p.name), inner, style=self.style),
                           p.whole(inner) if final else p.body(inner), p.footer(inner, self.style)) for p in self.panes]

    def flush(self) -> None:
        """Repaint if anything changed (text, an end, the size) or a waiting pane's clock moved;
        the repaint thread calls it every frame."""
        with self._lock:
            size = self.size()
            waiting = any(p.result is None and not p.text for p in self.panes)
            now = self.clock()
            if self._dirty or size != self._painted_size or (waiting and now - self._painted_at >= CLOCK_INTERVAL):
                self._paint(size)

    def _paint(self, size: tuple[int, int]) -> None:
        width, height = size
        self._dirty, self._painted_at, self._painted_size = False, self.clock(), size
        lines = lanes.compose(self._panes(width, final=False), width, max(3, height - 2), style=self.style)
        prefix = "" if self._cursor_hidden else HIDE_CURSOR
        self._cursor_hidden = True
        if prefix:
            self.out.write(prefix)
        self.region.paint([], lines, width)

    def _tick(self) -> None:
        while not self._stop.wait(FRAME_INTERVAL):
            with contextlib.suppress(Exception):  # a gone terminal: the lanes' own writes say so
                self.flush()

    def close(self) -> None:
        """Every answer in full, once, in place of the live view."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)
        with self._lock:
            width = self.size()[0]
            try:
                self.region.paint(lanes.compose(self._panes(width, final=True), width, style=self.style), [], width)
                if self._cursor_hidden:
                    self.out.write(SHOW_CURSOR)
            except OutputClosed:
                self.closed = True
