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
        """Our own lines on stderr (notices, errors, the status line) may carry SGR styling."""
        return self._styled(self.stderr_isatty)

    def stdout_styled(self) -> bool:
        """Our own lines on stdout (a race's headers, rules and footers, `[interrupted]`): the same
        rule as stderr's. The model's Markdown is not ours: NO_COLOR keeps its bold and italic."""
        return self._styled(self.stdout_isatty)

    def _styled(self, isatty: bool) -> bool:
        """NO_COLOR: none of our styling at all, not only no colors (FORCE_COLOR overrides it)."""
        return (isatty or self.force_color) and not self.no_color and not self.dumb
