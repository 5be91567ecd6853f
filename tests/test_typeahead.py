"""Keys typed while an answer streams never answer a question shown after it (#35.3).

A person who types `e⏎` or `y⏎` ahead (meaning it for something else) has not seen the shell menu
or the tool approval prompt yet: what is pending in the terminal is dropped when the question
shows. Driven through a pseudo-terminal against the fake server, the stream held open (a gate)
until the keys are typed and echoed.
"""

from __future__ import annotations

import io
import sys
import threading
import time

import pexpect
from conftest import STREAMCHAT, base_env
from fakeserver import Script
from test_tools import MCP_SERVER, env_with, root  # noqa: F401 (root is a fixture)


def _type_ahead(child: pexpect.spawn, server, keys: str) -> None:
    """Once the request is in flight, type `keys` and a newline; wait for the terminal's echo."""
    deadline = time.monotonic() + 30
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.requests, child.logfile_read.getvalue()
    child.send(keys + "\r")
    child.expect_exact(keys + "\r\n")  # the line discipline has it: it is pending input now


def test_keys_typed_during_the_stream_do_not_execute_a_shell_command(home, server, tmp_path):
    marker = tmp_path / "ran.txt"
    gate = threading.Event()
    server.script("cmd", Script(chunks=["```sh\n", f"touch {marker}\n```\n"], gate=gate))
    child = pexpect.spawn(STREAMCHAT, ["-m", "openai:cmd", "--shell", "make a file"], encoding="utf-8",
                          env=base_env(home, server), dimensions=(30, 120), timeout=15)
    child.logfile_read = io.StringIO()
    try:
        _type_ahead(child, server, "e")
        gate.set()
        child.expect_exact("[e]xecute / [r]evise")
        child.sendline("a")  # the first answer given after the menu showed
        child.expect_exact("aborted; nothing was run")
        child.expect(pexpect.EOF)
    finally:
        gate.set()
        child.close()
    assert child.exitstatus == 0 and not marker.exists()


def test_keys_typed_during_the_stream_do_not_approve_a_tool(home, server, root):  # noqa: F811
    gate = threading.Event()
    env = env_with(home, server, f'[mcp.files]\ncommand = "{sys.executable}"\nargs = ["{MCP_SERVER}", "{root}"]\n')
    server.script("t", Script(chunks=["Looking."], tool_calls=[("c1", "read_file", {"path": "a.py"})], gate=gate))
    child = pexpect.spawn(STREAMCHAT, ["-m", "openai:t", "--tools", "files", "read a.py"], env=env,
                          encoding="utf-8", dimensions=(30, 120), timeout=20)
    child.logfile_read = io.StringIO()
    try:
        _type_ahead(child, server, "y")
        gate.set()
        child.expect_exact("[y]es / [n]o")
        child.sendline("n")
        child.expect_exact("refused; the model was told")
        child.expect(pexpect.EOF)
    finally:
        gate.set()
        child.close()
    shown = child.logfile_read.getvalue()
    assert "← files:read_file" not in shown and "got: import httpx" not in shown
    assert "got: The user did not allow" in shown


def test_discard_typeahead_drops_pending_input_and_ignores_non_terminals(tmp_path):
    import os
    import select

    from streamchat.ui import discard_typeahead

    master, slave = os.openpty()
    with os.fdopen(slave, "rb", buffering=0) as terminal:
        os.write(master, b"y\n")
        assert select.select([terminal], [], [], 5)[0]  # the line is pending
        discard_typeahead(terminal)
        assert not select.select([terminal], [], [], 0.1)[0]
        os.write(master, b"n\n")  # typed after the question: kept
        assert terminal.read(2) == b"n\n"
    os.close(master)
    with open(tmp_path / "f", "w+") as plain:
        discard_typeahead(plain)  # a file, a closed stream, None: nothing happens
    discard_typeahead(plain)
    discard_typeahead(None)
