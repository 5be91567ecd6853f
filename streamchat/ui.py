"""One-line messages on stderr: errors, notices, stats. Never on stdout."""

from __future__ import annotations

import contextlib
import traceback as _traceback

from streamchat.environment import Environment
from streamchat.errors import redact

_DIM, _RED, _BOLD, _RESET = "\x1b[2m", "\x1b[31m", "\x1b[1m", "\x1b[0m"


class UI:
    def __init__(self, env: Environment) -> None:
        self.env = env
        self.styled = env.stderr_styled()

    def _write(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.env.stderr.write(text + "\n")
            self.env.stderr.flush()

    def error(self, message: str) -> None:
        one_line = redact(" ".join(message.split("\n")))
        if self.styled:
            self._write(f"{_BOLD}{_RED}error:{_RESET} {one_line}")
        else:
            self._write(f"error: {one_line}")

    def dim(self, text: str) -> str:
        return f"{_DIM}{text}{_RESET}" if self.styled else text

    def notice(self, message: str) -> None:
        self._write(self.dim(message))

    warn = notice

    def traceback(self, exc: BaseException) -> None:
        """--debug only: the full traceback, with anything key-like redacted."""
        self._write(redact("".join(_traceback.format_exception(exc))).rstrip("\n"))
