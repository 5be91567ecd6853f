"""What a power user tripped on in the first hour (issue 13): each test failed before its fix."""

from __future__ import annotations

import json
import os
import pty
import signal
import sqlite3
import subprocess

import pexpect
import pytest
from conftest import STREAMCHAT, base_env
from fakeserver import Script
from terminal_emulator import Terminal, tty_env
from test_repl import PROMPT, ask, exchange, paste
from test_repl import repl as repl  # the REPL fixture

from streamchat.events import TextDelta, TurnResult
from streamchat.render.markdown_stream import render_static
from streamchat.sinks.terminal import MarkdownSink
from streamchat.ui import UI

# -- 1. options before a subcommand --------------------------------------------------------------


def test_global_options_before_a_subcommand_never_become_a_prompt(invoke, server, home):
    cfg = home / "c.toml"
    cfg.write_text("timeout = 7\n")
    shown = invoke("--config", str(cfg), "config", "show")
    assert shown.code == 0 and json.loads(shown.out)["timeout"] == 7
    assert invoke("--debug", "models", "compat").code == 0
    assert invoke("--no-log", "config", "path").code == 0
    assert invoke("-m", "openai:echo", "--timeout", "5", "history", "list").code == 0
    assert invoke("--config", str(cfg), "history", "-n", "2").code == 0
    assert [r.path for r in server.requests if r.path.endswith("completions")] == []
    refused = invoke("-s", "be brief", "models")
    assert refused.code == 2 and "is a command" in refused.stderr
    asked = invoke("-m", "openai:echo", "--", "models")
    assert asked.code == 0 and asked.out.startswith("echo: models")


# -- 2. config values checked like flags -----------------------------------------------------------

@pytest.mark.parametrize("line,words", [("timeout = -5", "'timeout' must be at least 0.1"),
                                        ("timeout = 0", "'timeout' must be at least 0.1"),
                                        ("temperature = 5", "'temperature' must be from 0 to 2"),
                                        ("max_tokens = -3", "'max_tokens' must be at least 1")])
def test_config_values_have_the_flags_ranges(invoke, server, home, line, words):
    cfg = home / "bad.toml"
    cfg.write_text(line + "\n")
    r = invoke("--config", str(cfg), "-m", "openai:echo", "q")
    assert r.code == 3 and words in r.stderr and str(cfg) in r.stderr and "Traceback" not in r.stderr
    assert not server.requests


@pytest.mark.parametrize("args,words", [(["-m", "openai:echo", "--max-tokens", "0", "q"], "'--max-tokens': must be at least 1"),
                                       (["-m", "openai:echo", "--temperature", "5", "q"], "'--temperature': must be from 0 to 2"),
                                       (["history", "-n", "0"], "'--limit': must be at least 1"),
                                       (["serve", "--port", "99999"], "'--port': must be from 0 to 65535")])
def test_flag_ranges_are_said_in_the_same_words(invoke, server, args, words):
    """Integer flags said Typer's "Input should be greater than or equal to 1" beside the float
    flags' and the config file's "must be at least" / "must be from … to …"."""
    r = invoke(*args)
    assert r.code == 2 and words in r.stderr and not server.requests, r.stderr


def test_nan_temperature_is_not_a_number(invoke, server):
    r = invoke("--temperature", "nan", "-m", "openai:echo", "q")
    assert r.code == 2 and "not a number" in r.stderr and not server.requests


# -- 3 and 4. keys and base URLs ---------------------------------------------------------------------

def test_a_configured_api_key_env_that_is_unset_fails_before_sending(invoke, server, home):
    cfg = home / "k.toml"
    cfg.write_text(f'[providers.work]\ntype = "openai"\nbase_url = "{server.url}/v1"\napi_key_env = "WORK_KEY"\n')
    r = invoke("--config", str(cfg), "-m", "work:echo", "q")
    assert r.code == 3 and "WORK_KEY is not set" in r.stderr and not server.requests
    ok = invoke("--config", str(cfg), "-m", "work:echo", "q", env=base_env(home, server, WORK_KEY="k",
                                                                        STREAMCHAT_CONFIG=str(cfg)))
    assert ok.code == 0


def test_the_base_url_from_the_environment_is_shown(invoke, server, home):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    env = base_env(home, server, OPENAI_BASE_URL=dead)
    r = invoke("-m", "openai:echo", "--no-retry", "q", env=env)
    assert r.code == 6 and dead in r.stderr
    shown = json.loads(invoke("config", "show", env=env).out)["providers"]["openai"]
    assert shown["base_url"] == dead and shown["base_url_from"] == "OPENAI_BASE_URL"


# -- 5. help and history commands ----------------------------------------------------------------------

def test_help_shows_plain_metavars_and_history_takes_several_ids(invoke, server):
    for args in (["--help"], ["models", "--help"], ["history", "show", "--help"], ["history", "rm", "--help"],
                 ["chat", "--help"]):
        text = invoke(*args).out
        for stray in ("{ID", "{PROMPT", "<str>", "[[", "<list"):
            assert stray not in text, (args, stray)
    for prompt in ("one", "two", "three"):
        assert invoke("-m", "openai:echo", prompt).code == 0
    assert len(invoke("history", "list").out.splitlines()) == 3
    removed = invoke("history", "rm", "1", "2")
    assert removed.code == 0 and len(invoke("history").out.splitlines()) == 1
    assert invoke("history", "rm", "3", "99").code == 2 and len(invoke("history").out.splitlines()) == 1


def test_a_usage_error_names_the_command_the_user_typed(run):
    """`streamchat --bogus` said "Usage: streamchat chat …  Try 'streamchat chat -h'": a `chat` the user
    never typed (it is the default command). The usage line and the hint now name what was typed."""
    for args, path in ((["--bogus"], "streamchat"), (["--temperature", "abc", "hi"], "streamchat"),
                       (["chat", "--bogus"], "streamchat chat")):
        result = run(*args)
        assert result.code == 2, (args, result.stderr)
        assert f"Usage: {path} [OPTIONS] [PROMPT...]" in result.stderr and f"Try '{path} -h' for help." in result.stderr, \
            (args, result.stderr)


# -- 6 to 10. REPL input ----------------------------------------------------------------------------------

def test_pasted_text_starting_with_a_slash_is_a_message(repl, server):
    child = repl("-m", "openai:echo")
    paste(child, "// main.go\npackage main")
    child.expect_exact("echo: // main.go")
    child.expect_exact(PROMPT)
    assert server.last_messages()[-1]["content"] == "// main.go\npackage main"
    exchange(child, "/etc/hosts explain", "start with // to send")
    ask(child, "//etc/hosts explain")
    child.expect_exact("echo: /etc/hosts explain")


def test_pasted_triple_quotes_do_not_open_a_block(repl, server):
    child = repl("-m", "openai:echo")
    paste(child, '"""Module doc."""\nimport os')
    child.expect_exact("echo: ")
    child.expect_exact(PROMPT)
    assert server.last_messages()[-1]["content"] == '"""Module doc."""\nimport os'


def test_system_new_load_and_resume_messages(repl, server, invoke):
    assert invoke("-m", "openai:echo", "no system here").code == 0
    child = repl("-m", "openai:echo", "-s", "be brief")
    ask(child, '/system ""')
    child.expect_exact("system: (none)")
    ask(child, "/system terse")
    child.expect_exact("system: terse")
    ask(child, "/new")
    child.expect_exact("system prompt kept: terse")
    ask(child, "/load 1")
    child.expect_exact("loaded conversation 1 (1 turn)")
    ask(child, "again")
    child.expect_exact("echo: again")
    assert [m["role"] for m in server.last_messages()] == ["user", "assistant", "user"]  # it had no system prompt
    child.expect_exact(PROMPT)
    resumed = repl("-m", "openai:echo", "-c")  # the notice comes before the prompt the fixture waits for
    assert "resumed conversation 1 (2 turns)" in resumed.logfile_read.getvalue()


def test_save_does_not_overwrite_without_bang(repl, server, tmp_path):
    target = tmp_path / "t.md"
    target.write_text("precious")
    child = repl("-m", "openai:echo")
    ask(child, "hello")
    child.expect_exact("echo: hello")
    ask(child, f"/save {target}")
    child.expect_exact("exists")
    assert target.read_text() == "precious"
    ask(child, f"/save! {target}")
    child.expect_exact("saved")
    assert "echo: hello" in target.read_text()


@pytest.mark.parametrize("word", ["exit", "quit"])
def test_bare_exit_quits(repl, server, word):
    child = repl("-m", "openai:echo")
    ask(child, word)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and not server.requests


# -- 11 and 12. signals and a piped REPL ---------------------------------------------------------------------

@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_keep_the_partial_answer(server, home, sig, code):
    server.script("slow", Script(chunks=[f"w{i} " for i in range(200)], delay=0.03))
    proc = subprocess.Popen([STREAMCHAT, "-m", "openai:slow", "q"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=base_env(home, server))
    shown = proc.stdout.read1(100)
    proc.send_signal(sig)
    rest, err = proc.communicate(timeout=10)
    assert proc.returncode == code, err
    db = sqlite3.connect(home / "log.db")
    (content, state), = db.execute("SELECT content, state FROM messages WHERE role = 'assistant'").fetchall()
    assert state == "interrupted" and content + "\n" == (shown + rest).decode() and content.startswith("w0 ")
    assert server.wait_disconnect(2)


def test_the_repl_refuses_a_piped_stdout(server, home):
    main, secondary = pty.openpty()
    try:
        proc = subprocess.run([STREAMCHAT, "-m", "openai:echo"], stdin=secondary, capture_output=True,
                              env=base_env(home, server), timeout=30)
    finally:
        os.close(main)
        os.close(secondary)
    assert proc.returncode == 2 and proc.stdout == b""
    assert b"needs a terminal on stdout" in proc.stderr


# -- 13 to 15. output and log ------------------------------------------------------------------------------------

def test_json_error_is_partial_only_after_text(invoke, server):
    server.script("bad", Script(status=500))
    record = json.loads(invoke("-m", "openai:bad", "--no-retry", "--json", "q").out.splitlines()[-1])
    assert record["type"] == "error" and record["partial"] is False
    server.script("cut", Script(chunks=["some ", "more"], fault="drop", fault_after=1))
    record = json.loads(invoke("-m", "openai:cut", "--json", "q").out.splitlines()[-1])
    assert record["partial"] is True


@pytest.mark.parametrize("provider,reason", [("openai", "length"), ("anthropic", "max_tokens")])
def test_an_answer_cut_by_max_tokens_is_marked(invoke, server, provider, reason):
    server.script("cut", Script(chunks=["a ", "b"], finish_reason=reason))
    r = invoke("-m", f"{provider}:cut", "--max-tokens", "2", "q")
    assert r.code == 0 and r.out == "a b\n" and "cut off at the token limit" in r.stderr


def test_messages_that_read_oddly(invoke, server):
    server.script("busy", Script(chunks=["x"], fault="error_event", fault_after=1, error_type="overloaded_error",
                                 error_message="Overloaded"))
    r = invoke("-m", "anthropic:busy", "q")
    assert "is overloaded" in r.stderr and "HTTP 200" not in r.stderr
    assert "_[anthropic is overloaded" in invoke("history", "export", "1").out


def test_transcripts_mark_an_interruption_once(server, home, invoke):
    server.script("slow", Script(chunks=[f"w{i} " for i in range(100)], delay=0.05))
    proc = subprocess.Popen([STREAMCHAT, "-m", "openai:slow", "q"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=base_env(home, server))
    proc.stdout.read1(10)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=10)
    shown = invoke("history", "export", "1").out
    assert "## Assistant _[interrupted]_" in shown and "interrupted: interrupted" not in shown


# -- 16 to 18. rendering ------------------------------------------------------------------------------------------

def test_a_stall_mid_answer_shows_a_quiet_waiting_note_that_clears():
    env, out, err = tty_env()
    clock = [0.0]
    sink = MarkdownSink(env, UI(env), size=lambda: (60, 12), timer=False, clock=lambda: clock[0])
    sink.begin()
    sink.feed(TextDelta("first words"))
    clock[0] = 2.2
    sink.flush()
    assert "waiting for more (2 s)" in err.getvalue()
    sink.feed(TextDelta(" and the rest\n"))
    sink.end(TurnResult())
    term = Terminal(60, 12)
    term.feed(err.getvalue() + out.getvalue())
    assert not any("waiting" in line for line in term.lines())
    assert "waiting" not in out.getvalue()  # stderr only


def test_ordered_lists_are_numbered_with_a_period():
    from streamchat.render.markdown_stream import LineRenderer

    lines = [line.rstrip() for line in render_static("1. one\n2. two", 40, LineRenderer(color_system=None))]
    assert " 1. one" in lines and " 2. two" in lines
