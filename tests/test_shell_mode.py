"""--shell: a request becomes one command, executed only on a keypress at a terminal, never in a pipe."""

from __future__ import annotations

import io
import shlex

import pexpect
import pytest
from conftest import STREAMCHAT, base_env
from fakeserver import Script

from streamchat.shell_mode import parse_choice


@pytest.fixture
def command_model(server, tmp_path):
    marker = tmp_path / "ran.txt"
    server.script("cmd", Script(chunks=[f"```sh\nprintf 'shell-ran-ok\\n' > {marker}; cat {marker}\n```\n"]))
    return marker


def shell(home, server, *args: str) -> pexpect.spawn:
    child = pexpect.spawn(STREAMCHAT, ["-m", "openai:cmd", "--shell", *args], encoding="utf-8",
                          env=base_env(home, server, PROMPT_TOOLKIT_NO_CPR="1"), dimensions=(30, 120), timeout=15)
    child.logfile_read = io.StringIO()
    child.expect_exact("[e]xecute / [r]evise / [d]escribe / [c]opy / [a]bort")
    return child


def test_in_a_pipe_the_command_is_printed_never_run(invoke, server, command_model):
    r = invoke("-m", "openai:cmd", "--shell", "make a file")
    assert r.code == 0 and r.out.startswith("printf 'shell-ran-ok") and not command_model.exists()
    system = server.requests[-1].body["messages"][0]["content"]
    assert "one command" in system and "working directory" in system
    with_stats = invoke("-m", "openai:cmd", "--shell", "--stats", "make a file")  # --stats was ignored
    assert with_stats.code == 0 and with_stats.out == r.out and "TTFT" in with_stats.stderr and "tokens" in with_stats.stderr


def test_execute_runs_it_after_the_keypress(home, server, command_model):
    child = shell(home, server, "make a file")
    assert not command_model.exists()
    child.sendline("e")
    child.expect_exact("shell-ran-ok")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and command_model.exists()


def test_describe_revise_then_abort_by_default(home, server, command_model):
    child = shell(home, server, "make a file")
    child.sendline("d")
    child.expect_exact("[e]xecute")
    child.sendline("r")
    child.expect_exact("what should change?")
    child.sendline("quieter")
    child.expect_exact("[e]xecute")
    assert server.last_messages()[-1]["content"] == "Revise that command: quieter"
    assert any("Describe briefly" in m["content"] for r in server.requests for m in r.body["messages"])
    child.sendline("")
    child.expect_exact("aborted; nothing was run")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and not command_model.exists()


@pytest.mark.parametrize("reply, choice", [
    ("e", "execute"), ("E\n", "execute"), (" execute ", "execute"), ("Execute", "execute"),
    ("r", "revise"), ("revise", "revise"), ("d", "describe"), ("describe", "describe"),
    ("c", "copy"), ("COPY", "copy"), ("a", "abort"), ("abort", "abort"), ("", "abort"), ("  \n", "abort"),
])
def test_a_choice_is_one_key_or_the_whole_word(reply, choice):
    assert parse_choice(reply) == choice


@pytest.mark.parametrize("reply", [
    "explain it please", "exactly what does it do?", "ex", "exe", "executes", "e e", "can you shorten it",
    "cp", "yes", "y", "x", "é", "abort!", "r please",
])
def test_anything_else_is_no_choice(reply):
    assert parse_choice(reply) is None


def test_a_reply_that_is_not_a_choice_asks_again(home, server, command_model):
    child = shell(home, server, "make a file")
    child.sendline("explain it please")  # began with "e": it used to execute
    child.expect_exact("type e, r, d, c or a")
    child.expect_exact("[e]xecute")
    child.sendline("can you shorten it")  # began with "c": it used to copy
    child.expect_exact("type e, r, d, c or a")
    child.expect_exact("[e]xecute")
    child.sendline("abort")
    child.expect_exact("aborted; nothing was run")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and not command_model.exists()
    assert "copied" not in child.logfile_read.getvalue()


@pytest.mark.parametrize("where", ["menu", "revise"])
def test_ctrl_d_aborts_with_one_line(home, server, command_model, where):
    child = shell(home, server, "make a file")
    if where == "revise":
        child.sendline("r")
        child.expect_exact("what should change?")
    child.sendeof()
    child.expect_exact("aborted (end of input); nothing was run")
    child.expect(pexpect.EOF)
    child.close()
    shown = child.logfile_read.getvalue()
    assert child.exitstatus == 130 and not command_model.exists()
    assert "internal error" not in shown and "Traceback" not in shown


def _redirected(home, server, redirect: str, *, setsid: bool = False) -> pexpect.spawn:
    line = f"exec {shlex.quote(STREAMCHAT)} -m openai:cmd --shell 'make a file' {redirect}"
    argv = (["-w", "sh", "-c", line] if setsid else ["-c", line])
    child = pexpect.spawn("setsid" if setsid else "sh", argv, encoding="utf-8",
                          env=base_env(home, server), dimensions=(30, 120), timeout=15)
    child.logfile_read = io.StringIO()
    return child


def test_with_stderr_redirected_the_menu_is_on_the_terminal(home, server, command_model):
    child = _redirected(home, server, "2>/dev/null")  # the menu went there: invisible, yet e⏎ ran it
    child.expect_exact("command: ")
    child.expect_exact("printf 'shell-ran-ok")
    child.expect_exact("[e]xecute / [r]evise")
    child.sendline("e")
    child.expect_exact("shell-ran-ok")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and command_model.exists()


def test_without_a_terminal_to_ask_on_the_command_is_printed_not_run(home, server, command_model, tmp_path):
    err = tmp_path / "err.txt"
    child = _redirected(home, server, f"2>{err}", setsid=True)  # no controlling terminal: no /dev/tty
    child.expect_exact("printf 'shell-ran-ok")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and not command_model.exists()
    assert "[e]xecute" not in child.logfile_read.getvalue()
    assert "no terminal to ask on (/dev/tty)" in err.read_text()


def test_bidi_controls_in_the_command_are_shown_escaped(home, server, tmp_path):
    server.script("cmd", Script(chunks=["```sh\necho \u202etxt.exe\n```\n"]))
    child = shell(home, server, "make a file")
    child.sendline("a")
    child.expect(pexpect.EOF)
    child.close()
    shown = child.logfile_read.getvalue()
    assert "echo <U+202E>txt.exe" in shown and "\u202e" not in shown


def test_continue_skips_shell_mode_exchanges(invoke, server, command_model):
    server.script("chat", Script(chunks=["about cats"]))
    assert invoke("-m", "openai:chat", "tell me about cats").code == 0
    assert invoke("-m", "openai:cmd", "--shell", "list files").code == 0  # in a pipe: printed, not run
    assert invoke("-m", "openai:chat", "-c", "what was the topic?").code == 0
    sent = server.requests[-1].body["messages"]
    assert [m["content"] for m in sent] == ["tell me about cats", "about cats", "what was the topic?"]
    listed = invoke("history").out
    assert "tell me about cats" in listed and "list files" not in listed


def test_continue_after_an_aborted_shell_in_the_repl(home, server, command_model, invoke):
    from test_repl import PROMPT, spawn

    child = spawn(home, server, "-m", "openai:cmd")
    child.sendline("/shell list files")
    child.expect_exact("[e]xecute")
    child.sendline("a")
    child.expect_exact("aborted; nothing was run")
    child.expect_exact(PROMPT)
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    server.script("chat", Script(chunks=["fresh"]))
    r = invoke("-m", "openai:chat", "-c", "what was the topic?")
    assert r.code == 0 and "no earlier conversation" in r.stderr
    assert server.requests[-1].body["messages"] == [{"role": "user", "content": "what was the topic?"}]


def test_keys_typed_while_the_repls_shell_streams_are_not_echoed_into_it(home, server, tmp_path):
    """/shell in the REPL holds typed keys as a REPL turn does: they were echoed into the streaming
    answer; the menu still asks with echo on, and an executed command gets the terminal as it was."""
    import threading
    import time

    from test_repl import PROMPT, spawn

    gate = threading.Event()
    marker = tmp_path / "stty.txt"
    server.script("cmd", Script(chunks=["```sh\n", f"stty -a > {marker}\n```\n"], gate=gate))
    child = spawn(home, server, "-m", "openai:cmd")
    try:
        child.sendline("/shell show the terminal settings")
        deadline = time.monotonic() + 30
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.02)
        child.send("zqx")
        time.sleep(0.5)  # time for the terminal to echo them, were echo on
        gate.set()
        child.expect_exact("[e]xecute / [r]evise")
        child.sendline("e")
        child.expect_exact(PROMPT)
        child.sendline("/quit")
        child.expect(pexpect.EOF)
    finally:
        gate.set()
        child.close()
    assert "zqx" not in child.logfile_read.getvalue()
    settings = marker.read_text().split()
    assert "echo" in settings and "icanon" in settings  # the command ran with echo and line editing on
