"""Copy text to the clipboard: a clipboard tool where there is a display for it, else tmux's
own buffer inside tmux, else the terminal itself through OSC 52 (over SSH, in a console
without X, in most modern terminals).

Each way says what it did and what may still stop the text: tmux drops an application's
OSC 52 unless `set-clipboard` is `on` (its default is `external`), so inside tmux the text
goes in through `tmux load-buffer -w`, which also passes it to the outer terminal; and a
terminal may refuse clipboard writes altogether, which nothing can detect from here.

The text goes as the screen showed it (`render/sanitize.py`): ESC, BEL and the other C0 controls but
TAB and LF as `␛`, `␇`…, C1 controls as U+FFFD, bidi controls as `<U+202E>`, CR dropped. Raw, an
answer's `ESC[201~` ended a shell's bracketed paste, and every line after it ran when pasted.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from typing import IO, Any

from streamchat.render.sanitize import sanitize

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
REFUSED = "if it is not on the clipboard, the terminal refuses clipboard writes (OSC 52): allow them in its settings"


def _run(argv: list[str], text: str) -> bool:
    """Run a copying command with `text` on its stdin; it counts only when it exits 0. Its output
    goes nowhere: xclip's background child keeps it open."""
    try:
        done = subprocess.run(argv, input=text.encode(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=TOOL_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def copy(text: str, terminal: IO[Any] | None = None) -> str | None:
    """How the text was copied and what may still stop it ("with xclip", "into tmux's paste
    buffer …", "through the terminal (OSC 52) …"), or None; `terminal` gets the OSC 52
    sequence when it is a TTY and nothing else copied. The text is sanitized first (see above),
    and the answer says so when that changed it.

    A tool counts only when it exits 0: xclip without a display fails, and used to be reported
    as having copied."""
    safe = sanitize(text)
    how = _copy(safe, terminal)
    if how is None or safe == text:
        return how
    return f"{how} — its control characters as shown on screen (␛, ␇ …), not raw"


def _copy(text: str, terminal: IO[Any] | None) -> str | None:
    for needs, tool in TOOLS:
        if shutil.which(tool[0]) and all(os.environ.get(name) for name in needs) and _run(tool, text):
            return f"with {tool[0]}"
    if os.environ.get("TMUX") and shutil.which("tmux"):
        if _run(["tmux", "load-buffer", "-w", "-"], text):  # -w: tmux 3.2+ also sends it on as OSC 52
            return f"into tmux's paste buffer (prefix ] pastes it); tmux passed it on to the terminal — {REFUSED}"
        if _run(["tmux", "load-buffer", "-"], text):
            return ("into tmux's paste buffer only (prefix ] pastes it): this tmux is older than 3.2, "
                    "which passes it on to the terminal's clipboard")
    if terminal is not None and terminal.isatty():
        terminal.write(osc52(text))
        terminal.flush()
        between = ("; tmux passes it on only with set -g set-clipboard on" if os.environ.get("TMUX") else
                   "; GNU screen does not pass OSC 52 on" if os.environ.get("STY") else "")
        return f"through the terminal (OSC 52) — {REFUSED}{between}"
    return None


def osc52(text: str) -> str:
    """The escape sequence that asks the terminal to put `text` on the system clipboard."""
    return "\x1b]52;c;" + base64.b64encode(text.encode()).decode("ascii") + "\x07"
