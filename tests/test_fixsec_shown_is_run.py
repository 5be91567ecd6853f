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


class Osc52Terminal:
    """A pty as the terminal, no clipboard tool, no display, not in tmux: copied text goes out as OSC 52."""

    def __init__(self) -> None:
        import os

        self.master, slave = os.openpty()
        self.file = os.fdopen(slave, "w", encoding="utf-8")

    def clipboard(self) -> str:
        """What the last OSC 52 sequence put on the clipboard."""
        import base64
        import os
        import re

        sent = os.read(self.master, 1 << 16).decode()
        payload = re.fullmatch(r"\x1b\]52;c;([A-Za-z0-9+/=]*)\x07", sent)
        assert payload, repr(sent)
        return base64.b64decode(payload.group(1)).decode()


@pytest.fixture
def osc52(tmp_path, monkeypatch):
    import os

    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "TMUX", "STY"):
        monkeypatch.delenv(name, raising=False)
    terminal = Osc52Terminal()
    yield terminal
    terminal.file.close()
    os.close(terminal.master)


def test_the_clipboard_gets_no_control_characters(osc52):
    """QA-16: `/copy` put an answer's raw ESC[201~ on the clipboard; pasted into bash it ended the
    bracketed paste, and the next line ran without Enter."""
    from streamchat import clipboard

    how = clipboard.copy("harmless text\x1b[201~\necho INJECTED > /tmp/inj\n\x9b\u202e# end\x07\tok\r\n", osc52.file)
    assert osc52.clipboard() == "harmless text\u241b[201~\necho INJECTED > /tmp/inj\n\ufffd<U+202E># end\u2407\tok\n"
    assert how is not None and how.endswith("its control characters as shown on screen (␛, ␇ …), not raw")
    how = clipboard.copy("ls -la\n\tcafé\n", osc52.file)
    assert osc52.clipboard() == "ls -la\n\tcafé\n" and how is not None and "not raw" not in how


def test_the_shell_modes_copy_gets_the_command_as_shown(osc52):
    env = Environment(stdin=io.StringIO("c\n"), stdout=osc52.file, stderr=io.StringIO(), environ={})
    assert _menu(None, "touch safe \r# ; touch x\x1b[201~", env, UI(env)) == 0  # type: ignore[arg-type]
    assert osc52.clipboard() == "touch safe \u240d# ; touch x\u241b[201~"
