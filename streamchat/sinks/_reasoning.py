"""Reasoning ("thinking") text on stderr, shared by the terminal and plain sinks.

It streams dimmed (when stderr is styled) before the answer, and the answer starts on a
fresh line. Reasoning that arrives after the answer has begun is not interleaved with it:
it is counted and summarized in one line at the end (the full text is in --json).

On a terminal it is word-wrapped to the terminal's width: the terminal's own wrap would break
words and start continuation rows with the space between two words (" thought9 thought10").
A word is held until the space after it shows whether it fits on the row.
"""

from __future__ import annotations

from collections.abc import Callable

from streamchat.render.sanitize import sanitize
from streamchat.ui import UI


class ReasoningOutput:
    def __init__(self, ui: UI, width: Callable[[], int] | None = None) -> None:
        self.ui = ui
        self.open = False  # a reasoning line is being written
        self.answer_started = False
        self.hidden_chars = 0
        if width is None and ui.live:
            from streamchat.sinks.live_region import terminal_size

            width = lambda: terminal_size(ui.env)[0]  # noqa: E731
        self.width = width  # None: not a terminal, the text goes out as it comes
        self._col = 0  # cells written on the current row
        self._spaces = 0  # spaces after the last word, written before the next one if it fits
        self._word = ""  # the word being received, not yet written

    def write(self, text: str) -> None:
        if self.answer_started:
            self.hidden_chars += len(text)
            return
        self.open = True
        text = sanitize(text)
        if self.width is not None:
            text = self._wrap(text)
        if text:
            self._emit(self.ui.dim(text))

    def _wrap(self, text: str) -> str:
        """What of `text` can be written now, with a line break before each word that would not fit."""
        width = max(1, self.width() if self.width is not None else 80)
        out: list[str] = []
        start = 0
        for i, ch in enumerate(text):
            if ch == " " or ch == "\n":
                self._word += text[start:i]
                start = i + 1
                out.append(self._flush_word(width))
                if ch == "\n":
                    out.append("\n")
                    self._col = self._spaces = 0
                else:
                    self._spaces += 1
        self._word += text[start:]
        return "".join(out)

    def _flush_word(self, width: int) -> str:
        if not self._word:
            return ""
        from rich.cells import cell_len

        word, self._word = self._word, ""
        cells = cell_len(word)
        if self._col and self._col + self._spaces + cells > width:
            lead, self._col = "\n", 0  # the spaces go: a row starts with the word
        else:
            lead, self._col = " " * self._spaces, self._col + self._spaces
        self._spaces = 0
        self._col += cells
        if self._col > width:  # a word wider than the row: the terminal breaks it
            self._col = self._col % width or width
        return lead + word

    def answer_begins(self) -> None:
        """Call before answer text (every time is fine): ends the reasoning line."""
        self.answer_started = True
        self.close()

    def close(self) -> None:
        if self.open:
            self.open = False
            rest = self._flush_word(max(1, self.width())) if self.width is not None else ""
            self._col = self._spaces = 0
            self._emit((self.ui.dim(rest) if rest else "") + "\n")

    def finish(self) -> None:
        self.close()
        if self.hidden_chars:
            self.ui.notice(f"(reasoning after the answer began: {self.hidden_chars} characters, see --json)")

    def _emit(self, text: str) -> None:
        self.ui.write(text)
