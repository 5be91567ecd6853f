"""--schema on a terminal: the JSON streams dim, then the validated document replaces it.

The stream is shown as it comes but cannot be trusted until the whole answer is checked, so it
is dim, in the live region terminal.py repaints (the tail that fits the screen). Once the answer
validates, the region is repainted in place with the document, pretty and in full; an answer
that does not fit is erased before the corrective request streams, so the screen ends with one
document, the one that validated. Reusing LiveRegion keeps terminal.py unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.cells import chop_cells

from streamchat.environment import Environment
from streamchat.events import Event, ReasoningDelta, TextDelta, TurnResult
from streamchat.render.sanitize import sanitize
from streamchat.schema import dump
from streamchat.sinks._output import Output
from streamchat.sinks._reasoning import ReasoningOutput
from streamchat.sinks.live_region import LiveRegion, terminal_size
from streamchat.sinks.terminal import FRAME_INTERVAL
from streamchat.ui import UI

DIM, RESET = "\x1b[2m", "\x1b[0m"


class LiveJson:
    """A sink for each attempt (`sink()`), then `accept(data)` or `reject()` for what it showed.
    `size` is a seam for tests (an in-memory terminal), as in MarkdownSink."""

    def __init__(self, env: Environment, ui: UI, *, size: Callable[[], tuple[int, int]] | None = None) -> None:
        self.env, self.ui = env, ui
        self.size = size or (lambda: terminal_size(env))
        self.out = Output(env.stdout)
        self.region = LiveRegion(self.out.write, reflow="XTERM_VERSION" not in env.environ)
        self.sink()

    def sink(self) -> LiveJson:
        """Ready for the next attempt."""
        self.text = ""
        self.spinner = self.ui.spinner("waiting")
        self.reasoning = ReasoningOutput(self.ui, width=lambda: self.size()[0])
        self._last_paint = float("-inf")
        return self

    # -- sink protocol -------------------------------------------------------------------
    def begin(self) -> None:
        self.spinner.start()

    def feed(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            if not self.reasoning.answer_started:
                self.spinner.stop()
                self.reasoning.answer_begins()
            self.text += sanitize(event.text)
            if time.monotonic() - self._last_paint >= FRAME_INTERVAL:
                self._paint()
        elif isinstance(event, ReasoningDelta):
            self.spinner.stop()
            self.reasoning.write(event.text)

    def end(self, result: TurnResult) -> None:
        self.spinner.stop()
        self.reasoning.finish()
        if result.ok:
            self._paint()  # the last pieces; accept() or reject() follows
        else:  # interrupted or failed: what came stays printed, dim
            self._show([self._dim(line) for line in self.text.split("\n")] if self.text else [])

    # -- the verdict ---------------------------------------------------------------------
    def accept(self, data: Any) -> None:
        self._show(sanitize(dump(data, pretty=True)).split("\n"))

    def reject(self) -> None:
        self._show([])

    def fail(self, message: str) -> None:
        pass  # the error line says it; the screen keeps nothing of an answer that does not fit

    # -- painting ------------------------------------------------------------------------
    def _paint(self) -> None:
        """The tail of the text that fits the screen, dim, cut into rows (so the region's height is known)."""
        width, height = self.size()
        rows = [piece for line in self.text.split("\n") for piece in (chop_cells(line, width) or [""])]
        self.region.paint([], [self._dim(row) for row in rows[-max(1, height - 2):]], width)
        self._last_paint = time.monotonic()

    def _show(self, lines: list[str]) -> None:
        """Replace the live region with `lines`, printed for good."""
        self.region.paint(lines, [], self.size()[0])

    @staticmethod
    def _dim(text: str) -> str:
        return f"{DIM}{text}{RESET}" if text else ""
