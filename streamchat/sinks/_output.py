"""Byte-level writing to stdout shared by every sink: flush per chunk, broken pipe → OutputClosed."""

from __future__ import annotations

import os
import re
import sys
from typing import IO, Any

from streamchat.errors import OutputClosed

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class Output:
    def __init__(self, stream: IO[Any]) -> None:
        self._stream = stream
        self._buffer = getattr(stream, "buffer", None)

    def write(self, text: str) -> None:
        try:
            if self._buffer is not None:
                try:
                    data = text.encode("utf-8", "surrogateescape")
                except UnicodeEncodeError:  # a lone surrogate a provider sent (not a file name's byte)
                    data = _LONE_SURROGATE.sub("\ufffd", text).encode("utf-8")
                self._buffer.write(data)
                self._buffer.flush()
            else:
                self._stream.write(text)
                self._stream.flush()
        except OSError:  # a closed pipe (EPIPE) or a hung-up terminal (EIO): stdout is gone
            silence_stdout()
            raise OutputClosed() from None


def silence_stdout() -> None:
    """Point fd 1 at /dev/null so the interpreter's final flush cannot complain (the reader is gone)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
