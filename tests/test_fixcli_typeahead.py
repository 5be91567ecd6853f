"""QA-18: keys typed while an answer streams were lost when that answer was stopped with Ctrl-C: the
line discipline flushes its input queue when it sends SIGINT (ISIG) unless NOFLSH is set. Through a
pseudo-terminal against the fake server."""

from __future__ import annotations

import threading

import pexpect
import pytest
from fakeserver import Script
from repl_spawn import PROMPT, repl_children


@pytest.fixture
def repl(home, server):
    yield from repl_children(home, server)


def test_keys_typed_during_an_answer_survive_ctrl_c(repl, server):
    gate = threading.Event()
    server.script("slow", Script(chunks=["first words ", "and more"], gate=gate))
    child = repl("-m", "openai:slow")
    try:
        child.sendline("second")
        child.expect_exact("first words")
        child.send("typed ahead")  # no Enter: the next question, typed while reading
        child.expect([pexpect.TIMEOUT], timeout=0.5)  # the keys reach the terminal's queue, unechoed
        child.sendintr()
        child.expect_exact("[interrupted]")
        child.expect_exact(PROMPT)
        child.expect_exact("typed ahead")  # the next prompt starts with them
        child.send("\r")
        child.expect_exact("first words")
    finally:
        gate.set()
    assert server.requests[-1].body["messages"][-1]["content"] == "typed ahead"

