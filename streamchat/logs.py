"""Logging for --debug and serve: secrets redacted from every line, control characters shown as `␛`…
(render/sanitize.py), a message's line breaks as `\\n`, a flood of one repeated line cut short.

A client can make the server log (bad requests, file-descriptor exhaustion); without a
limit, ~20,000 slow connections wrote 153 MB of identical tracebacks in 15 seconds.
"""

from __future__ import annotations

import logging
import sys
import time

from streamchat.errors import redact
from streamchat.render.sanitize import sanitize


class RedactingFormatter(logging.Formatter):
    def __init__(self, secrets: tuple[str, ...], fmt: str = "%(levelname)s: %(name)s: %(message)s") -> None:
        super().__init__(fmt)
        self.secrets = tuple(s for s in secrets if s)

    def format(self, record: logging.LogRecord) -> str:
        """The line, secrets redacted and sanitized as the CLI's notices are: a log line quotes what
        clients and upstreams chose (a model's name, a server's error text), and its escape sequences
        reached the operator's terminal (a title set, the screen cleared; OSC 52 writes the clipboard)."""
        return sanitize(redact(super().format(record), self.secrets))

    def formatMessage(self, record: logging.LogRecord) -> str:
        """The record's own line, its CR/LF shown as `\\r`/`\\n`: an upstream's error text with a line
        break wrote a second line that passed for the server's own. A traceback, added after this,
        keeps its line breaks."""
        return super().formatMessage(record).replace("\r", "\\r").replace("\n", "\\n")


class RepeatLimit(logging.Filter):
    """Let the same message template through at most `burst` times per `window` seconds,
    then say once how many were dropped when it is let through again."""

    def __init__(self, burst: int = 5, window: float = 10.0) -> None:
        super().__init__()
        self.burst, self.window = burst, window
        self._seen: dict[tuple[str, str], tuple[float, int, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = time.monotonic()
        start, count, dropped = self._seen.get(key, (now, 0, 0))
        if now - start > self.window:
            if dropped:
                record.msg = f"{record.msg} (and {dropped} more like it in {self.window:g} s)"
            start, count, dropped = now, 0, 0
        count += 1
        if count > self.burst:
            self._seen[key] = (start, count, dropped + 1)
            return False
        self._seen[key] = (start, count, dropped)
        return True


def cut_at_shutdown(record: logging.LogRecord) -> bool:
    """False for uvicorn's traceback of a stream cancelled because the shutdown's grace ran out:
    the line before it ("Cancel 1 running task(s), timeout graceful shutdown exceeded") says so."""
    import asyncio

    exc = record.exc_info[1] if record.exc_info else None
    return not (record.name == "uvicorn.error" and isinstance(exc, asyncio.CancelledError))


def configure(*, debug: bool, secrets: tuple[str, ...], fmt: str = "%(levelname)s: %(name)s: %(message)s") -> None:
    """One stderr handler on the root logger for the SDKs, uvicorn, FastAPI and us."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(secrets, fmt))
    handler.addFilter(RepeatLimit())
    if not debug:
        handler.addFilter(cut_at_shutdown)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    # frame-by-frame WebSocket and HTTP parser dumps hold prompts and answers: never log them
    for noisy in ("websockets", "uvicorn.protocols", "httpcore", "hpack"):
        logging.getLogger(noisy).setLevel(logging.INFO if debug else logging.WARNING)
