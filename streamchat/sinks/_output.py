"""Byte-level writing to stdout shared by every sink: flush per chunk, broken pipe → OutputClosed.

stdout that cannot be written for another reason (a full disk, a file over its size limit) ends
the answer the same way (the partial answer saved), but says so on stderr, and the process ends
with OUTPUT_FAILED, not the quiet 141 a script may take for `| head` having read enough.
"""

from __future__ import annotations

import errno
import os
import re
import sys
from typing import IO, Any

from streamchat.errors import OutputClosed

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_GONE = {errno.EPIPE, errno.EIO, errno.ECONNRESET, errno.ENXIO, errno.EBADF}  # the reader or terminal is gone
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}  # a print() that raises one of these: stdout is full
failure: str | None = None  # why stdout could not be written, when not because its reader left


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
        except OSError as exc:  # a closed pipe (EPIPE) or a hung-up terminal (EIO): stdout is gone
            if exc.errno not in _GONE:
                failed(exc, answer=True)
            silence_stdout()
            raise OutputClosed() from None


def stdout_failed(exc: BaseException) -> bool:
    """Whether `exc` is stdout refusing a write for lack of room (no file named: not some other file)."""
    return isinstance(exc, OSError) and exc.filename is None and exc.errno in _FULL


def failed(exc: OSError, *, answer: bool = False) -> None:
    """stdout could not be written (ENOSPC, EFBIG, EDQUOT…): one line on stderr, once (`answer`: while
    an answer streamed, which the log keeps)."""
    global failure
    if failure is None:
        failure = exc.strerror or type(exc).__name__
        try:
            kept = "; what streamed is in the log (streamchat history show), unless --no-log" if answer else ""
            sys.stderr.write(f"error: cannot write to stdout: {failure} — free some space or write elsewhere{kept}\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


def silence_stdout() -> None:
    """Point fd 1 at /dev/null so the interpreter's final flush cannot complain (the reader is gone)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
