"""Compose a prompt in the user's editor ($VISUAL, $EDITOR, else vi or nano)."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from streamchat.errors import UsageError


def editor_argv() -> tuple[list[str], bool]:
    """The editor's command, and whether the user chose it (VISUAL/EDITOR) rather than our fallback."""
    for var in ("VISUAL", "EDITOR"):
        value = os.environ.get(var, "").strip()
        if value:
            try:
                return shlex.split(value), True
            except ValueError as exc:  # an unclosed quote: it was "internal error", exit 1
                raise UsageError(f"{var} cannot be read as a command ({exc}): {value}",
                                 hint=f"fix its quoting, e.g. export {var}='code --wait'") from None
    for fallback in ("vi", "nano"):
        if shutil.which(fallback):
            return [fallback], False
    raise UsageError("no editor found", hint="set EDITOR, e.g. export EDITOR=nano")


@contextlib.contextmanager
def _terminal(argv: list[str], chosen: bool) -> Iterator[IO[bytes] | None]:
    """What the editor reads keys from and draws on: our own stdin/stdout when they are the
    terminal, else the terminal itself (/dev/tty: `cmd | streamchat --editor` still edits there).

    Without any terminal (a script, cron) the fallback vi waited for keys forever; a chosen
    editor runs as it is, since VISUAL may open a window of its own (`code --wait`).
    """
    if sys.stdin.isatty() and sys.stdout.isatty():
        yield None
        return
    try:
        tty = open("/dev/tty", "r+b", buffering=0)  # noqa: SIM115 (closed below, after the editor exits)
    except OSError:
        if not chosen:
            raise UsageError(f"the editor ({argv[0]}) needs a terminal, and there is none",
                             hint="run it from a terminal, or set VISUAL to an editor with a window of its own, "
                                  "e.g. VISUAL='code --wait'") from None
        yield None
        return
    with tty:
        yield tty


def run_editor(path: Path) -> int:
    """Open the editor on `path` and wait for it; its exit status."""
    argv, chosen = editor_argv()
    with _terminal(argv, chosen) as tty:
        try:
            return subprocess.call([*argv, str(path)], stdin=tty, stdout=tty)
        except FileNotFoundError:
            raise UsageError(f"the editor '{argv[0]}' was not found", hint="check VISUAL / EDITOR") from None


def edit_text(initial: str, *, suffix: str = ".md", unused: str = "nothing was sent") -> str:
    """Open the editor on a temp file holding `initial`; what is saved comes back (the file is removed).
    `suffix` picks the editor's syntax; `unused` ends the message when the editor fails."""
    fd, name = tempfile.mkstemp(prefix="streamchat-", suffix=suffix)
    path = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(initial)
        code = run_editor(path)
        if code != 0:
            raise UsageError(f"the editor exited with {code}; {unused}", hint="save and quit normally")
        return path.read_text(encoding="utf-8")
    finally:
        path.unlink(missing_ok=True)
