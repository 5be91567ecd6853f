"""REPL commands over answers, in-process against the fake server: unfinished code blocks (QA-19)."""

from __future__ import annotations

import pytest
from fakeserver import Script
from terminal_emulator import ANSI, tty_env

from streamchat.ui import UI

OPEN = "Here:\n\n```sh\necho hi\n"  # the fence never closes, as when a stream is cut


def _repl(server, model: str):
    from streamchat.chat import ChatOptions
    from streamchat.config import parse_settings
    from streamchat.repl import Repl
    from streamchat.service import Overrides

    settings = parse_settings({"providers": {"compat": {"type": "openai", "base_url": f"{server.url}/v1",
                                                        "api_key": "k"}}})
    env, out, err = tty_env()
    repl = Repl(settings, ChatOptions(overrides=Overrides(model=f"compat:{model}"), log=False, markdown=False),
                env, UI(env))
    return repl, out, err


@pytest.fixture
def no_clipboard(monkeypatch):
    """No clipboard tool nor tmux: /copy can only write OSC 52 to the (fake) terminal."""
    for var in ("WAYLAND_DISPLAY", "DISPLAY", "TMUX"):
        monkeypatch.delenv(var, raising=False)


def test_an_unfinished_block_is_marked_and_neither_copied_nor_saved(server, home, no_clipboard):
    server.script("opencode", Script(chunks=["Before:\n\n```py\nx = 1\n```\n\n", OPEN]))
    repl, out, err = _repl(server, "opencode")
    repl.handle("x")
    assert "code blocks: 1 py (1 line) · 2 sh (1 line, unfinished)" in ANSI.sub("", err.getvalue())

    target = home / "c2.sh"
    repl.handle(f"/save-code 2 {target}")
    repl.handle("/copy 2")
    said = ANSI.sub("", err.getvalue())
    assert not target.exists()
    assert "\x1b]52;" not in out.getvalue()
    assert said.count("code block 2 is unfinished: the answer ended inside it") == 2, said
    assert "/save FILE saves the whole conversation" in said and "/copy copies the whole answer" in said
    assert "saved code block" not in said and "copied code block" not in said

    repl.handle(f"/save-code 1 {target}")  # the complete block before it still is
    assert target.read_text() == "x = 1\n"


def test_a_block_cut_off_at_the_token_limit_is_unfinished_too(server, home, no_clipboard):
    server.script("len", Script(chunks=[OPEN], finish_reason="length"))
    repl, _out, err = _repl(server, "len")
    repl.handle("x")
    repl.handle(f"/save-code 1 {home / 'c.sh'}")
    said = ANSI.sub("", err.getvalue())
    assert "1 sh (1 line, unfinished)" in said and "code block 1 is unfinished" in said
    assert not (home / "c.sh").exists()
