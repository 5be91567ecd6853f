"""`streamchat history` on a terminal prints what was logged as text, never as Rich markup.

A question holding `[/]` ("what does [/] mean in a regex?") made every later `history` on a
terminal fail with "internal error: MarkupError", exit 1; `[link=URL]…[/link]` in a question or a
model name was turned into an OSC 8 hyperlink, `[on red]` into colours: the table read logged text
as Rich markup.
"""

from __future__ import annotations

import fcntl
import os
import struct
import termios

from conftest import base_env

from streamchat.cli import main

MARKUP = "what does [/] mean, and [bold]this[/bold] and [link=http://evil.example]that[/link]?"


def _on_a_terminal(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run the CLI in-process with stdout on a real pseudo-terminal 160 columns wide."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    try:
        with open(slave, "wb", buffering=0, closefd=False) as tty:
            code = main(argv, env, stdout=tty)
        os.set_blocking(master, False)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except (BlockingIOError, OSError):
                break
            if not chunk:
                break
            chunks.append(chunk)
        return code, b"".join(chunks).decode("utf-8", "replace")
    finally:
        os.close(master)
        os.close(slave)


def test_history_on_a_terminal_shows_markup_as_text(invoke, server, home):
    server.script("plain", chunks=["ok"])
    env = base_env(home, server)
    assert invoke("-m", "openai:plain", MARKUP, env=env).code == 0
    code, shown = _on_a_terminal(["history"], env)
    assert code == 0, shown
    flat = " ".join(shown.split())
    assert "what does [/] mean" in flat and "[bold]this[/bold]" in flat
    assert "\x1b]8;" not in shown  # no hyperlink made of the question


def test_history_votes_on_a_terminal_shows_markup_as_text(home, monkeypatch):
    from streamchat.leaderboard import Vote
    from streamchat.store import open_log

    env = base_env(home)
    monkeypatch.setenv("STREAMCHAT_DB", env["STREAMCHAT_DB"])
    open_log(enabled=True, warn=print, required=True).add_vote(
        Vote(("openai:[/]x", "openai:y"), "win", "openai:[/]x", False, "q"))
    code, shown = _on_a_terminal(["history", "votes"], env)
    assert code == 0, shown
    assert "openai:[/]x" in shown
