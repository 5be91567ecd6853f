"""Reasoning ("thinking") text on stderr, shared by the terminal and plain sinks.

It streams dimmed (when stderr is styled) before the answer, and the answer starts on a
fresh line. Reasoning that arrives after the answer has begun is not interleaved with it:
it is counted and summarized in one line at the end (the full text is in --json).
"""

from __future__ import annotations

from streamchat.render.sanitize import sanitize
from streamchat.ui import UI


class ReasoningOutput:
    def __init__(self, ui: UI) -> None:
        self.ui = ui
        self.open = False  # a reasoning line is being written
        self.answer_started = False
        self.hidden_chars = 0

    def write(self, text: str) -> None:
        if self.answer_started:
            self.hidden_chars += len(text)
            return
        self.open = True
        self._emit(self.ui.dim(sanitize(text)))

    def answer_begins(self) -> None:
        """Call before answer text (every time is fine): ends the reasoning line."""
        self.answer_started = True
        self.close()

    def close(self) -> None:
        if self.open:
            self.open = False
            self._emit("\n")

    def finish(self) -> None:
        self.close()
        if self.hidden_chars:
            self.ui.notice(f"(reasoning after the answer began: {self.hidden_chars} characters, see --json)")

    def _emit(self, text: str) -> None:
        self.ui.write(text)
