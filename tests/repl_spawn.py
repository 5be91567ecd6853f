"""The REPL under pexpect against the fake server: the children a test module's `repl` fixture spawns."""

from __future__ import annotations

import contextlib
import io
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pexpect
from conftest import STREAMCHAT, base_env

PROMPT = "›"


def repl_children(home: Path, server: Any, *, width: int = 120, timeout: float = 20,
                  cpr: bool = False) -> Iterator[Callable[..., pexpect.spawn]]:
    """Yields `spawn(*args)`: a REPL (30 rows by `width`) at its first prompt, what it shows kept in
    `child.logfile_read`; afterwards each is hung up on (SIGHUP) and closed. pexpect answers no
    cursor-position request (CPR): prompt-toolkit is told so (PROMPT_TOOLKIT_NO_CPR) unless `cpr`,
    for the tests of how the REPL finds that out, or of a test that answers them itself."""
    children: list[pexpect.spawn] = []

    def spawn(*args: str) -> pexpect.spawn:
        env = base_env(home, server, **({} if cpr else {"PROMPT_TOOLKIT_NO_CPR": "1"}))
        child = pexpect.spawn(STREAMCHAT, list(args), env=env, encoding="utf-8", dimensions=(30, width),
                              timeout=timeout)
        child.logfile_read = io.StringIO()
        child.expect_exact(PROMPT)
        children.append(child)
        return child

    yield spawn
    for child in children:
        if child.isalive():
            child.kill(signal.SIGHUP)
            with contextlib.suppress(pexpect.ExceptionPexpect):
                child.expect(pexpect.EOF, timeout=10)
        child.close(force=True)
