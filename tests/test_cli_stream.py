"""One-shot streaming through the real SDKs against the fake server."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
import time

import pytest
from conftest import PROVIDERS, STREAMCHAT, base_env
from fakeserver import Script
from import_probe import imported_by

TRICKY = ["Line one\n", "line two ", "with émoji 🎉 and ", "中文 text", "\n\nlast  line\n"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_stdout_is_exactly_the_streamed_text(run, server, provider):
    server.script("m1", chunks=TRICKY)
    r = run("-m", f"{provider}:m1", "hi")
    assert r.code == 0, r.stderr
    assert r.stdout == "".join(TRICKY).encode()
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("provider", PROVIDERS)
def test_multibyte_split_across_network_chunks(invoke, server, provider):
    """Every byte in its own chunk: emoji and CJK split mid-character must arrive whole."""
    server.script("m1", chunks=["ab🎉", "中文é"], byte_split=1)
    r = invoke("-m", f"{provider}:m1", "hi")
    assert r.code == 0, r.stderr
    assert r.out == "ab🎉中文é\n"  # a newline ends a piped answer that has none
    assert "\ufffd" not in r.out


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_incremental_delivery(home, server, provider):
    """The reader sees the first words while the server still holds the rest."""
    gate = threading.Event()
    server.script("slow", chunks=["first words ", "the rest"], gate=gate)
    proc = subprocess.Popen([STREAMCHAT, "-m", f"{provider}:slow", "go"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=base_env(home, server))
    try:
        got = b""
        while len(got) < len(b"first words "):
            got += proc.stdout.read1(100)
        assert got == b"first words "
        assert proc.poll() is None and server.completed == 0
        gate.set()
        rest, _ = proc.communicate(timeout=30)
        assert got + rest == b"first words the rest\n"
        assert proc.returncode == 0
    finally:
        gate.set()
        proc.kill()


def test_stdin_alone_is_the_prompt(invoke, server):
    r = invoke("-m", "openai:echo", stdin=b"piped question")
    assert r.code == 0, r.stderr
    assert r.out == "echo: piped question\n"


def test_stdin_and_prompt_are_combined(run, server):
    r = run("-m", "openai:echo", "explain", stdin=b"file contents\nline 2\n")
    assert r.code == 0, r.stderr
    assert server.last_messages()[-1] == {"role": "user", "content": "explain\n\nfile contents\nline 2"}


def test_system_prompt_and_options_reach_the_server(invoke, server):
    r = invoke("-m", "anthropic:echo", "-s", "be brief", "--temperature", "0.3", "--max-tokens", "50", "q")
    assert r.code == 0, r.stderr
    body = server.requests[-1].body
    assert body["system"] == "be brief" and body["temperature"] == 0.3 and body["max_tokens"] == 50
    r = invoke("-m", "openai:echo", "-s", "be brief", "q")
    assert server.last_messages()[0] == {"role": "system", "content": "be brief"}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_json_events(invoke, server, provider):
    server.script("m1", chunks=["a\n", "b"], reasoning=["think"])
    r = invoke("-m", f"{provider}:m1", "--json", "q")
    assert r.code == 0, r.stderr
    events = [json.loads(line) for line in r.out.splitlines()]
    assert [e for e in events if e["type"] == "reasoning"] == [{"type": "reasoning", "text": "think"}]
    assert "".join(e["text"] for e in events if e["type"] == "text") == "a\nb"
    usage = [e for e in events if e["type"] == "usage"][-1]
    assert usage["input_tokens"] == 7 and usage["output_tokens"] == 2
    done = events[-1]
    assert done["type"] == "done" and done["finish_reason"] in ("stop", "end_turn")
    assert set(done["stats"]) >= {"ttft_ms", "tokens", "tokens_per_s"}


def test_json_error_event(invoke, server):
    server.script("m1", status=429, error_type="rate_limit_error")
    r = invoke("-m", "openai:m1", "--json", "--no-retry", "q")
    assert r.code == 5
    last = json.loads(r.out.splitlines()[-1])
    assert last["type"] == "error" and last["code"] == "rate_limited" and "429" in last["message"]


def test_reasoning_goes_to_stderr_not_stdout(invoke, server):
    server.script("m1", chunks=["answer"], reasoning=["secret thoughts"])
    r = invoke("-m", "openai:m1", "q")
    assert r.out == "answer\n"
    assert "secret thoughts" in r.stderr


def test_stats_line(invoke, server):
    r = invoke("-m", "openai:echo", "--stats", "q")
    assert r.code == 0
    assert "TTFT" in r.stderr and "tok/s" in r.stderr


def test_connection_refused(invoke, home):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    env = base_env(home, OPENAI_BASE_URL=f"http://127.0.0.1:{port}/v1", OPENAI_API_KEY="k")
    r = invoke("-m", "openai:x", "--no-retry", "q", env=env)
    assert r.code == 6
    assert "refused" in r.stderr and "Traceback" not in r.stderr


def test_model_spec_splits_at_first_colon(invoke, server):
    server.script("ft:gpt-4o:org", chunks=["ok"])
    r = invoke("-m", "openai:ft:gpt-4o:org", "q")
    assert r.code == 0, r.stderr
    assert server.requests[-1].body["model"] == "ft:gpt-4o:org"


def test_default_group_subcommand_vs_prompt(invoke, server):
    r = invoke("-m", "openai:echo", "models are fun")
    assert r.out == "echo: models are fun\n"
    r = invoke("models", "compat")
    assert r.code == 0, r.stderr
    assert "compat:echo" in r.out.splitlines()


def test_help_and_version_do_not_import_sdks(home):
    for flag in ("--help", "--version"):
        imported, p = imported_by([flag], ("openai", "anthropic", "llama_cpp", "google.genai"))
        assert imported == set(), p.stderr
    p = subprocess.run([STREAMCHAT, "--version"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.startswith("streamchat ")


def test_no_prompt_and_empty_stdin_is_usage_error(invoke):
    r = invoke(stdin=b"")
    assert r.code == 2 and "no prompt" in r.stderr


def test_broken_pipe_exits_quietly(home, server):
    server.script("long", chunks=[f"line {i}\n" for i in range(200)], delay=0.01)
    p = subprocess.run(f"'{STREAMCHAT}' -m openai:long q | head -1", shell=True, capture_output=True,
                       env=base_env(home, server), timeout=30, stdin=subprocess.DEVNULL)
    assert p.stdout == b"line 0\n"
    assert p.stderr == b"", p.stderr
    assert server.wait_disconnect(5), "the upstream stream was not closed"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_interrupt_one_shot_keeps_partial_and_exits_130(home, server, provider):
    import signal

    server.script("slow", chunks=[f"w{i} " for i in range(100)], delay=0.05)
    proc = subprocess.Popen([STREAMCHAT, "-m", f"{provider}:slow", "q"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=base_env(home, server))
    first = proc.stdout.read1(100)
    assert first.startswith(b"w0")
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=10)
    assert proc.returncode == 130
    assert b"Traceback" not in err
    out = first + rest
    assert out.startswith(b"w0 w1 ") and len(out.split()) < 100
    assert server.wait_disconnect(3)


def test_a_piped_answer_ends_with_a_newline_and_raw_keeps_the_bytes(invoke, server):
    server.script("m", chunks=["no ", "newline"])
    assert invoke("-m", "openai:m", "q").stdout == b"no newline\n"
    assert invoke("-m", "openai:m", "--raw", "q").stdout == b"no newline"
    server.script("nl", chunks=["ends\n"])
    assert invoke("-m", "openai:nl", "q").stdout == b"ends\n"  # never a second one


@pytest.mark.parametrize("script,line", [
    (Script(chunks=["part one ", "part two"], fault="drop", fault_after=1), "error: "),
    (Script(chunks=["a ", "b"], finish_reason="length"), "[cut off at the token limit"),
])
def test_an_error_or_notice_after_piped_text_starts_on_its_own_line(home, server, script, line):
    """`streamchat q 2>&1 | less` (or a pipe whose reader writes to the same terminal as stderr):
    the error or notice used to continue the answer's last line."""
    server.script("m", script)
    proc = subprocess.run([STREAMCHAT, "-m", "openai:m", "q"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, env=base_env(home, server), timeout=60)
    lines = proc.stdout.decode().splitlines()
    assert len(lines) == 2 and lines[1].startswith(line), lines


def test_json_done_names_the_saved_conversation_and_turn(invoke, server, home):
    first = json.loads(invoke("-m", "openai:echo", "--json", "one").out.splitlines()[-1])
    second = json.loads(invoke("-m", "openai:echo", "--json", "-c", "two").out.splitlines()[-1])
    assert first["type"] == second["type"] == "done"
    assert first["conversation_id"] == second["conversation_id"] and first["turn_id"] != second["turn_id"]
    db = sqlite3.connect(home / "log.db")
    try:
        saved = db.execute("SELECT conversation_id, id FROM messages WHERE role = 'assistant' ORDER BY id").fetchall()
    finally:
        db.close()
    assert saved == [(first["conversation_id"], first["turn_id"]), (second["conversation_id"], second["turn_id"])]
    assert "echo: two" in invoke("history", "show", str(second["conversation_id"])).out
    unsaved = json.loads(invoke("-m", "openai:echo", "--json", "--no-log", "three").out.splitlines()[-1])
    assert (unsaved["conversation_id"], unsaved["turn_id"]) == (None, None)
