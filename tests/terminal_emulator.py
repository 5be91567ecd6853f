"""Replay what a sink wrote to a TTY into pyte, with scrollback, as a person would see it."""

from __future__ import annotations

import io
import re

import pyte

from streamchat.environment import Environment

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


class Terminal:
    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.screen = pyte.HistoryScreen(width, height, history=100000)
        self.stream = pyte.Stream(self.screen)

    def feed(self, data: str) -> None:
        self.stream.feed(data.replace("\n", "\r\n"))  # what the tty's ONLCR does

    def resize(self, width: int, height: int, *, reflow: bool = False) -> None:
        """Resize like xterm (lines truncated) or, with `reflow`, like tmux/VTE/kitty: a row
        wider than the new width is re-wrapped onto several rows. As in tmux, a row is as wide
        as the cells written to it (up to its last non-blank cell here)."""
        if not reflow:
            self.width, self.height = width, height
            self.screen.resize(height, width)
            return
        cursor_row = len(self.screen.history.top) + self.screen.cursor.y
        rows = self.rows()[:cursor_row]
        wrapped: list[str] = []
        for row in rows:
            cells = len(row.rstrip())
            padded = row.ljust(cells)
            wrapped += [padded[i : i + width] for i in range(0, max(cells, 1), width)]
        self.width, self.height = width, height
        self.screen = pyte.HistoryScreen(width, height, history=100000)
        self.stream = pyte.Stream(self.screen)
        self.stream.feed("".join(row.rstrip() + "\r\n" for row in wrapped))

    def rows(self) -> list[str]:
        hist = ["".join(line[x].data for x in sorted(line)) for line in self.screen.history.top]
        return hist + list(self.screen.display)

    def lines(self) -> list[str]:
        """Scrollback + screen as text, trailing blank lines dropped."""
        hist = ["".join(line[x].data for x in sorted(line)).rstrip() for line in self.screen.history.top]
        out = hist + [line.rstrip() for line in self.screen.display]
        while out and not out[-1]:
            out.pop()
        return out


def plain(lines: list[str]) -> list[str]:
    out = [ANSI.sub("", line).rstrip() for line in lines]
    while out and not out[-1]:
        out.pop()
    return out


def tty_env(**environ: str) -> tuple[Environment, FakeTTY, FakeTTY]:
    out, err = FakeTTY(), FakeTTY()  # stdout and stderr are the same terminal
    return Environment(stdin=None, stdout=out, stderr=err, environ={"TERM": "xterm-256color", **environ}), out, err
