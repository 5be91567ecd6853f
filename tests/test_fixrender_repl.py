"""REPL commands in-process against the fake server: unfinished code blocks (QA-19), the modes of the
files /save and /save-code write (QA-21), hints in the REPL's words (QA-20)."""

from __future__ import annotations

import os
import stat

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


# -- QA-21: /save and /save-code write 0600 files, whatever the umask

@pytest.fixture
def open_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_save_and_save_code_write_0600_files(server, home, open_umask):
    server.script("code", Script(chunks=["Run:\n\n```sh\necho hi\n```\n"]))
    repl, _out, err = _repl(server, "code")
    repl.handle("x")
    older = home / "old.md"
    older.write_text("someone's notes\n")
    os.chmod(older, 0o644)
    linked = home / "link.md"
    linked.symlink_to(older)
    repl.handle(f"/save {home / 't2.md'}")
    repl.handle(f"/save-code 1 {home / 'c.sh'}")
    repl.handle(f"/save! {linked}")  # through the link, as a shell's > writes, and made 0600
    said = ANSI.sub("", err.getvalue())
    assert said.count("saved") == 3, said
    assert {name: stat.S_IMODE((home / name).stat().st_mode) for name in ("t2.md", "c.sh", "old.md")} == \
        {"t2.md": 0o600, "c.sh": 0o600, "old.md": 0o600}
    assert (home / "c.sh").read_text() == "echo hi\n" and "echo hi" in older.read_text() and linked.is_symlink()


def test_a_file_that_cannot_be_written_is_one_line(server, home):
    server.script("code", Script(chunks=["Run:\n\n```sh\necho hi\n```\n"]))
    repl, _out, err = _repl(server, "code")
    repl.handle("x")
    repl.handle(f"/save {home / 'no' / 'such' / 'dir.md'}")
    assert f"cannot write {home / 'no' / 'such' / 'dir.md'}: No such file or directory" in ANSI.sub("", err.getvalue())


# -- QA-20: the REPL's hints in its own words, not the command line's

def _said(repl, line: str) -> str:
    """What the REPL's loop shows for `line`: a StreamchatError in the REPL's words (run_repl)."""
    from streamchat.errors import StreamchatError

    try:
        repl.handle(line)
    except StreamchatError as err:
        return err.said(repl=True)
    return ""


def test_cut_off_hint_names_set_max_tokens(server, home):
    server.script("len", Script(chunks=["a b c d"], finish_reason="length"))
    repl, _out, err = _repl(server, "len")
    repl.handle("x")
    assert "[cut off at the token limit (1 tokens) — /continue continues it, /set max_tokens N raises the limit]" \
        in ANSI.sub("", err.getvalue())


def test_set_and_continue_hints_are_repl_commands(server, home):
    repl, _out, _err = _repl(server, "echo")
    assert _said(repl, "/set temperature 5") == "/set: temperature must be a number from 0 to 2 — e.g. /set temperature 0"
    assert _said(repl, "/set top_p 5") == "option top_p must be a number from 0 to 1 — e.g. /set top_p 0"
    unknown = _said(repl, "/set bogus 1")
    assert unknown.startswith("compat takes no option 'bogus' — its options: ") and unknown.endswith("(/set NAME VALUE)")
    assert _said(repl, "/continue").endswith("— ask a question first; /continue is for an answer cut off at the token limit")
    repl.handle("hi")
    assert _said(repl, "/continue").endswith("— /continue is for an answer cut off at the token limit; ask a follow-up instead")


def test_the_command_line_keeps_its_flags():
    from streamchat.errors import UsageError
    from streamchat.providers.options import SAMPLING, Text, check

    with pytest.raises(UsageError) as caught:
        check(SAMPLING, [("temperature", Text("5"))], provider="openai")
    assert caught.value.said() == "option temperature must be a number from 0 to 2 — e.g. temperature=0"
