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

    def resize(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.screen.resize(height, width)

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


def tty_env(**environ: str) -> tuple[Environment, FakeTTY, io.StringIO]:
    out, err = FakeTTY(), io.StringIO()
    return Environment(stdin=None, stdout=out, stderr=err, environ={"TERM": "xterm-256color", **environ}), out, err
