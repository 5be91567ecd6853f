"""The live region in a real tmux pane, narrowed and widened every quarter second while a code
block streams: tmux re-wraps rows on resize, so this is where stray joins and copies show."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid

import pytest
from conftest import STREAMCHAT, base_env
from fakeserver import Script

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="Debian's tmux is installed by .ci/run")

CODE = "Here is code:\n\n```python\n" + "".join(
    f"def f{i}(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\n" for i in range(6)
) + "```\n\nDone.\n"


def tmux(socket: str, *args: str) -> str:
    return subprocess.run(["tmux", "-L", socket, "-f", "/dev/null", *args], check=True, capture_output=True,
                          text=True).stdout


def test_resizing_while_a_code_block_streams_leaves_clean_scrollback(server, home):
    server.script("code", Script(chunks=[CODE[i : i + 4] for i in range(0, len(CODE), 4)], delay=0.02))
    env = base_env(home, server)
    socket = f"sc-{uuid.uuid4().hex[:8]}"
    tmux(socket, "new-session", "-d", "-s", "t", "-x", "80", "-y", "24", "-e", f"PATH={env['PATH']}")
    try:
        tmux(socket, "set", "-g", "window-size", "manual")
        exports = " ".join(f"{k}='{v}'" for k, v in env.items()
                           if k.startswith(("OPENAI_", "STREAMCHAT_", "HOME", "XDG_", "TERM")))
        tmux(socket, "send-keys", "-t", "t", f"clear; env {exports} {STREAMCHAT} -m openai:code q; echo END-OF-RUN",
             "Enter")
        width = 80
        for _ in range(14):
            time.sleep(0.25)
            width = 50 if width == 80 else 80
            tmux(socket, "resize-window", "-t", "t", "-x", str(width), "-y", "24")
        tmux(socket, "resize-window", "-t", "t", "-x", "80", "-y", "24")
        for _ in range(100):
            screen = tmux(socket, "capture-pane", "-p", "-J", "-S", "-", "-t", "t")
            if "\nEND-OF-RUN" in screen:
                break
            time.sleep(0.1)
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)
    lines = [line.rstrip() for line in screen.splitlines()]
    answer = lines[lines.index("Here is code:") : lines.index("Done.") + 1]
    code_lines = [line for line in answer if line.strip() and line not in ("Here is code:", "Done.")]
    expected = [f" {line}" for line in CODE.split("```python\n")[1].split("```")[0].splitlines() if line]
    assert code_lines == expected, "\n".join(answer)
