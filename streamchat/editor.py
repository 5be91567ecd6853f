"""Compose a prompt in the user's editor ($VISUAL, $EDITOR, else vi or nano)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from streamchat.errors import UsageError


def editor_argv() -> list[str]:
    for var in ("VISUAL", "EDITOR"):
        value = os.environ.get(var, "").strip()
        if value:
            return shlex.split(value)
    for fallback in ("vi", "nano"):
        if shutil.which(fallback):
            return [fallback]
    raise UsageError("no editor found", hint="set EDITOR, e.g. export EDITOR=nano")


def edit_text(initial: str) -> str:
    """Open the editor on a temp file holding `initial`; what is saved comes back (the file is removed)."""
    argv = editor_argv()
    fd, name = tempfile.mkstemp(prefix="streamchat-", suffix=".md")
    path = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(initial)
        try:
            code = subprocess.call([*argv, str(path)])
        except FileNotFoundError:
            raise UsageError(f"the editor '{argv[0]}' was not found", hint="check VISUAL / EDITOR") from None
        if code != 0:
            raise UsageError(f"the editor exited with {code}; nothing was sent", hint="save and quit normally")
        return path.read_text(encoding="utf-8")
    finally:
        path.unlink(missing_ok=True)
