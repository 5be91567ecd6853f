"""A spinner with elapsed time on stderr, only when stderr is a terminal."""

from __future__ import annotations

import threading
import time

from streamchat.environment import Environment

FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class Spinner:
    def __init__(self, env: Environment, label: str, *, delay: float = 0.1) -> None:
        self.env = env
        self.label = label
        self.delay = delay
        self.enabled = env.stderr_isatty and not env.dumb
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._drawn = False
        self._lock = threading.Lock()

    def start(self) -> Spinner:
        if self.enabled and self._thread is None:
            self._started = time.monotonic()
            self._thread = threading.Thread(target=self._run, name="spinner", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        i = 0
        while not self._stop.wait(self.delay if i else self.delay * 2):
            elapsed = time.monotonic() - self._started
            with self._lock:
                if self._stop.is_set():
                    return
                self.env.stderr.write(f"\r\x1b[2K{FRAMES[i % len(FRAMES)]} {self.label} {elapsed:.1f}s")
                self.env.stderr.flush()
                self._drawn = True
            i += 1

    def stop(self) -> None:
        """Stop and erase the line; safe to call twice and from a Ctrl-C handler."""
        self._stop.set()
        with self._lock:
            if self._drawn:
                self.env.stderr.write("\r\x1b[2K")
                self.env.stderr.flush()
                self._drawn = False

    def __enter__(self) -> Spinner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
