"""What is shown is what runs or is pasted (QA-5, QA-16): a `--shell` command, a tool call's line and
the clipboard never hide a character the terminal would not draw."""

from __future__ import annotations

import io

import pytest

from streamchat.environment import Environment
from streamchat.events import ToolCall
from streamchat.render.sanitize import sanitize_command
from streamchat.shell_mode import _menu
from streamchat.tools import argument_lines
from streamchat.ui import UI

# each hides a `;` behind what reads as a comment: bash takes `\r#` (or `\u00a0#` …) as a word
HIDDEN = [("\r", "\u240d"), ("\u00a0", "<U+00A0>"), ("\u200b", "<U+200B>"), ("\u3164", "<U+3164>"),
          ("\u034f", "<U+034F>"), ("\u0301", "<U+0301>"), ("\u0085", "<U+0085>"), ("\ufe0f", "<U+FE0F>")]


@pytest.mark.parametrize("hidden, shown", HIDDEN)
def test_the_command_that_runs_is_the_one_shown(tmp_path, monkeypatch, hidden, shown):
    """QA-5: the menu dropped CR, so `safe \\r# ; touch PWNED` showed as a comment and ran `touch PWNED`."""
    ran = tmp_path / "ran"
    shell = tmp_path / "shell"
    shell.write_text(f'#!/bin/sh\nprintf %s "$2" > "{ran}"\n')  # records the command it was given
    shell.chmod(0o755)
    monkeypatch.setenv("SHELL", str(shell))
    command = f"touch /tmp/safe {hidden}# ; touch /tmp/PWNED"
    err = io.StringIO()
    env = Environment(stdin=io.StringIO("e\n"), stdout=io.StringIO(), stderr=err, environ={})
    assert _menu(None, command, env, UI(env)) == 0  # type: ignore[arg-type]  # execute needs no session
    line = err.getvalue().split("command: ", 1)[1].split("\n", 1)[0]
    assert ran.read_bytes().decode() == command
    assert line == f"touch /tmp/safe {shown}# ; touch /tmp/PWNED"


def test_text_that_is_drawn_as_it_is_stays_as_it_is():
    text = "grep -r 'café' ~/Dokumente | sort -t\t -k2 # 日本語 — ok\nsecond line"
    assert sanitize_command(text) == text
    assert sanitize_command("a\x1b[2Jb\x07") == "a\u241b[2Jb\u2407"


def test_a_tool_calls_arguments_show_hidden_spaces():
    call = ToolCall("c1", "run", '{"cmd": "ls \\u00a0# ; rm -rf ~", "x\\r": 1}')
    lines = argument_lines(call, 100)
    assert lines == ['  cmd = "ls <U+00A0># ; rm -rf ~"', '  "x\\r" = 1']
