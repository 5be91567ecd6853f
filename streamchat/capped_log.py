"""A log file that never grows past a limit: an MCP server's stderr, which the server controls.

A server once wrote 200 MB to its log in 0.8 s. Past `LIMIT` bytes the file is renamed to
`NAME.log.1` (replacing the older one) and a new one is begun, so a log takes at most twice
`LIMIT` on disk and keeps the latest lines. Both files are 0600 (private_files).
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from types import TracebackType
from typing import TextIO

from streamchat.private_files import open_private_append

LIMIT = 1024 * 1024  # bytes in one file before it is rotated


class CappedLog:
    """Append text to `path`, rotating it at `limit` bytes; safe to write from several threads."""

    def __init__(self, path: Path, limit: int = LIMIT) -> None:
        self.path = path
        self.limit = limit
        self._lock = threading.Lock()
        self._file: TextIO = open_private_append(path)
        self._size = os.fstat(self._file.fileno()).st_size

    def write(self, text: str) -> None:
        data = text.encode("utf-8", "replace")
        with self._lock:
            while data:
                if self._size >= self.limit:
                    self._rotate()
                room = self.limit - self._size
                piece, data = data[:room], data[room:]
                self._file.write(piece.decode("utf-8", "ignore"))  # a character cut in two is dropped
                self._size += len(piece)
            self._file.flush()

    def _rotate(self) -> None:
        self._file.close()
        with contextlib.suppress(OSError):
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        self._file = open_private_append(self.path)
        self._size = 0

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def __enter__(self) -> CappedLog:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
