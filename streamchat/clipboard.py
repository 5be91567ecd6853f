"""Copy text to the clipboard: a clipboard tool where there is a display for it, else the
terminal itself through OSC 52 (over SSH, in a console without X, in most modern terminals)."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from typing import IO, Any

# (the environment variables the tool needs, its command line)
TOOLS: tuple[tuple[tuple[str, ...], list[str]], ...] = (
    (("WAYLAND_DISPLAY",), ["wl-copy"]),
    (("DISPLAY",), ["xclip", "-selection", "clipboard"]),
    (("DISPLAY",), ["xsel", "--clipboard", "--input"]),
    ((), ["pbcopy"]),
)
MISSING = ("no clipboard — install wl-clipboard, xclip or xsel (with a display), "
           "or use a terminal that accepts OSC 52 (tmux: set -g set-clipboard on)")
TOOL_TIMEOUT_S = 5.0


def copy(text: str, terminal: IO[Any] | None = None) -> str | None:
    """How the text was copied ("with xclip", "through the terminal (OSC 52)"), or None;
    `terminal` gets the OSC 52 sequence when it is a TTY and no tool copied.

    A tool counts only when it exits 0: xclip without a display fails, and used to be reported
    as having copied. Its output goes nowhere: xclip's background child keeps it open."""
    for needs, tool in TOOLS:
        if shutil.which(tool[0]) and all(os.environ.get(name) for name in needs):
            try:
                done = subprocess.run(tool, input=text.encode(), stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, timeout=TOOL_TIMEOUT_S, check=False)
            except (OSError, subprocess.TimeoutExpired):
                continue
            if done.returncode == 0:
                return f"with {tool[0]}"
    if terminal is not None and terminal.isatty():
        terminal.write(osc52(text))
        terminal.flush()
        return "through the terminal (OSC 52)"
    return None


def osc52(text: str) -> str:
    """The escape sequence that asks the terminal to put `text` on the system clipboard."""
    return "\x1b]52;c;" + base64.b64encode(text.encode()).decode("ascii") + "\x07"
