"""How a process ends: with its own exit code, never on a signal of its own making, and with a
turn's partial answer saved however many signals end it."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import STREAMCHAT, base_env
from fakeserver import Script

# -- #28.1: an exit while the SDK is still importing in the background ------------------------------

EARLY_ERROR_RUNS = 240  # ~1 in 200 crashed before the fix (more with several at once): a few hundred runs
PARALLEL = 4


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_early_errors_never_end_on_a_signal(home):
    """`-f /dev/zero` fails at once, while the preimport thread is inside `import openai`: the
    interpreter's finalization racing with that import ended runs in SIGSEGV. Every run here must
    end with the error's own exit code."""
    env = base_env(home, OPENAI_API_KEY="sk-test")
    argv = [STREAMCHAT, "-m", "openai:echo", "-f", "/dev/zero", "q"]

    def once(_: int) -> tuple[int, str]:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=120)
        return proc.returncode, proc.stderr.decode("utf-8", "replace")

    with ThreadPoolExecutor(PARALLEL) as pool:
        results = list(pool.map(once, range(EARLY_ERROR_RUNS)))
    codes = Counter(code for code, _ in results)
    assert codes == {2: EARLY_ERROR_RUNS}, f"exit codes (negative: killed by that signal): {dict(codes)}"
    assert all(err.strip() == "error: /dev/zero is a binary file — attach images and PDFs with -a instead"
               for _, err in results), {err for _, err in results}



@pytest.mark.slow
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_quick_ctrl_d_in_the_repl_ends_with_0(server, home, provider):
    """Ctrl-D as soon as the prompt shows: the warm-up thread is still importing the SDK."""
    import pexpect

    env = base_env(home, server, PROMPT_TOOLKIT_NO_CPR="1")
    statuses = []
    for _ in range(8):
        child = pexpect.spawn(STREAMCHAT, ["-m", f"{provider}:echo"], env=env, encoding="utf-8", dimensions=(30, 100),
                              timeout=30)
        child.expect_exact("›")
        child.sendeof()
        child.expect(pexpect.EOF)
        child.close()
        statuses.append((child.exitstatus, child.signalstatus))
    assert statuses == [(0, None)] * 8


# -- #35.10: a second signal while the turn is ending ----------------------------------------------

@pytest.mark.parametrize("first,second,code", [
    (signal.SIGINT, signal.SIGINT, 130),  # a double Ctrl-C
    (signal.SIGTERM, signal.SIGTERM, 143),
    (signal.SIGHUP, signal.SIGTERM, 129),  # a closed terminal, then the session's SIGTERM: the first one counts
])
@pytest.mark.parametrize("gap", [0.003, 0.01])
def test_a_second_signal_waits_until_the_partial_answer_is_saved(server, home, first, second, code, gap):
    server.script("slow", Script(chunks=[f"w{i} " for i in range(300)], delay=0.03))
    proc = subprocess.Popen([STREAMCHAT, "-m", "openai:slow", "q"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=base_env(home, server))
    shown = proc.stdout.read1(100)
    proc.send_signal(first)
    time.sleep(gap)  # the second lands while the first is closing the stream and saving
    proc.send_signal(second)
    rest, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert b"Traceback" not in err
    db = sqlite3.connect(home / "log.db")
    try:
        rows = db.execute("SELECT content, state FROM messages WHERE role = 'assistant'").fetchall()
    finally:
        db.close()
    assert [(content + "\n", state) for content, state in rows] == [((shown + rest).decode(), "interrupted")]
    assert rows[0][0].startswith("w0 ")


# -- #28.13: a reader that closed stdout, for every command -------------------------------------------

@pytest.mark.parametrize("args", [
    ["history", "-n", "200"], ["history", "show", "1"], ["history", "export", "1", "--format", "json"],
    ["history", "search", "hello"], ["config", "show"], ["config", "path"], ["roles"], ["keys", "list"],
    ["models", "compat"], ["completion", "bash"], ["--version"], ["--help"], ["history", "--help"],
    ["-m", "openai:echo", "q"],
], ids=" ".join)
def test_a_closed_stdout_ends_every_command_quietly_with_141(invoke, server, home, args):
    """`streamchat history | head -1` said "internal error: BrokenPipeError" (exit 1); --help and
    --version exited 1. Here the reader is gone before the command writes, so every write meets it."""
    env = base_env(home, server)
    assert invoke("-m", "openai:echo", "hello", env=env).code == 0  # a conversation to list (no process needed)
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run([STREAMCHAT, *args], stdout=write, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                              env=env, timeout=60)
    finally:
        os.close(write)
    assert (proc.returncode, proc.stderr) == (141, b"")
