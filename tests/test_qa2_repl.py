"""QA pass 2: the REPL as a demanding terminal user types it (pexpect, against the fake server)."""

from __future__ import annotations

import contextlib
import io
import signal

import pexpect
import pytest
from conftest import STREAMCHAT, base_env
from repl_spawn import PROMPT, repl_children


@pytest.fixture
def repl(home, server):
    yield from repl_children(home, server, width=100, timeout=15)


@pytest.mark.parametrize("typed", ["/schema 'city, pop int'", '/schema "city, pop int"'])
def test_schema_takes_the_quoted_form_its_own_hint_shows(repl, typed):
    """QB-1: `/schema 'city, pop int'` — as /help and `/schema` alone show it — was refused with
    `''city' is not a field name`: the quotes went into the concise syntax."""
    child = repl("-m", "openai:echo")
    child.sendline(typed)
    child.expect_exact('schema: {"type": "object"')
    child.expect_exact(PROMPT)
    assert "not a field name" not in child.logfile_read.getvalue()
    child.sendline("largest city of Peru")
    child.expect_exact('"city"')
    child.expect_exact(PROMPT)


def test_save_and_save_code_take_a_quoted_file_name(repl, server, home):
    """QB-2: `/save-code 1 'my file.sh'` wrote a file named `'my file.sh'`, quotes included (and
    `/save '~/notes.md'` failed: no directory `'~`), while /file and /attach read shell words and
    Tab completion quotes names with spaces. `/name 'work'` was refused for its quotes."""
    from fakeserver import Script

    server.script("code", Script(chunks=["Run:\n\n```bash\necho hi\n```\n"]))
    child = repl("-m", "openai:code")
    child.sendline("show me")
    child.expect_exact("code blocks:")
    child.expect_exact(PROMPT)
    child.sendline(f"/save-code 1 '{home}/my file.sh'")
    child.expect_exact("saved code block 1")
    child.expect_exact(PROMPT)
    child.sendline(f'/save "{home}/my notes.md"')
    child.expect_exact("saved")
    child.expect_exact(PROMPT)
    child.sendline("/name 'work'")
    child.expect_exact("name: work")
    child.expect_exact(PROMPT)
    assert (home / "my file.sh").read_text() == "echo hi\n"
    assert "echo hi" in (home / "my notes.md").read_text()
    assert not [p for p in home.iterdir() if "'" in p.name or '"' in p.name]


def test_alt_after_edit_last_brings_the_first_question_and_answer_back(server, home):
    """QB-6: README says /edit last makes alternatives for /alt, and the REPL keeps the old exchange
    "as an alternative" — but alternatives had to share the question's text, so after /edit last
    `/alt` said "no other answer", and `history show` left the first exchange out."""
    import subprocess


    editor = home / "ed.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/cats/dogs/' \"$1\"\n")
    editor.chmod(0o755)
    env = base_env(home, server, PROMPT_TOOLKIT_NO_CPR="1", EDITOR=str(editor))
    child = pexpect.spawn(STREAMCHAT, ["-m", "openai:echo"], env=env, encoding="utf-8", dimensions=(30, 100), timeout=15)
    child.logfile_read = io.StringIO()
    try:
        child.expect_exact(PROMPT)
        child.sendline("tell me about cats")
        child.expect_exact("echo: tell me about cats")
        child.expect_exact(PROMPT)
        child.sendline("/edit last")
        child.expect_exact("echo: tell me about dogs")
        child.expect_exact(PROMPT)
        child.sendline("/alt")
        child.expect_exact("answer 1 of 2 (to: tell me about cats):")
        child.expect_exact("echo: tell me about cats")
        child.expect_exact(PROMPT)
        child.sendline("and more")
        child.expect_exact("echo: and more")
        child.expect_exact(PROMPT)
        assert [m["content"] for m in server.last_messages()] == [
            "tell me about cats", "echo: tell me about cats", "and more"]
    finally:
        child.kill(signal.SIGHUP)
        with contextlib.suppress(pexpect.ExceptionPexpect):
            child.expect(pexpect.EOF, timeout=10)
        child.close(force=True)
    shown = subprocess.run([STREAMCHAT, "history", "show", "1"], capture_output=True, text=True,
                           env=base_env(home, server), timeout=60).stdout
    assert "echo: tell me about cats" in shown and "echo: tell me about dogs" in shown, shown
    assert "To the question asked before /edit last" in shown, shown


def test_save_code_bang_overwrites_as_save_bang_does(repl, server, home):
    """QB-7: `/save-code N FILE` refused an existing FILE ("remove it first") with no overwrite
    form, while `/save! FILE` overwrites."""
    from fakeserver import Script

    server.script("code", Script(chunks=["Run:\n\n```bash\necho new\n```\n"]))
    target = home / "run.sh"
    target.write_text("echo old\n")
    child = repl("-m", "openai:code")
    child.sendline("show me")
    child.expect_exact("code blocks:")
    child.expect_exact(PROMPT)
    child.sendline(f"/save-code 1 {target}")
    child.expect_exact(f"/save-code! 1 {target} overwrites it")
    child.expect_exact(PROMPT)
    assert target.read_text() == "echo old\n"
    child.sendline(f"/save-code! 1 {target}")
    child.expect_exact("saved code block 1")
    child.expect_exact(PROMPT)
    assert target.read_text() == "echo new\n"
