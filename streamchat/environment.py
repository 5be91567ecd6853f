"""The process's streams and terminal facts in one object that tests can replace."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import IO, Any


def _isatty(stream: IO[Any] | None) -> bool:
    if stream is None:
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@dataclass
class Environment:
    stdin: IO[Any] | None = field(default_factory=lambda: sys.stdin)
    stdout: IO[Any] = field(default_factory=lambda: sys.stdout)
    stderr: IO[Any] = field(default_factory=lambda: sys.stderr)
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    @property
    def stdin_isatty(self) -> bool:
        return _isatty(self.stdin)

    @property
    def stdout_isatty(self) -> bool:
        return _isatty(self.stdout)

    @property
    def stderr_isatty(self) -> bool:
        return _isatty(self.stderr)

    @property
    def no_color(self) -> bool:
        return bool(self.environ.get("NO_COLOR")) and not self.force_color

    @property
    def force_color(self) -> bool:
        return bool(self.environ.get("FORCE_COLOR"))

    @property
    def dumb(self) -> bool:
        return self.environ.get("TERM") == "dumb"

    def stderr_styled(self) -> bool:
        return (self.stderr_isatty or self.force_color) and not self.no_color and not self.dumb
