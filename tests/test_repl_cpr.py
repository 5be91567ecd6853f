"""The REPL on a terminal that never answers a cursor-position request (CPR, ESC[6n): serial
consoles, some multiplexers, `script` pipes, pexpect. prompt-toolkit asks at every prompt and
decides "not supported" only when one prompt stays up two seconds: a quick typist never got
there, so every Enter stalled a second waiting for the reply, and a slower one got a
"WARNING: your terminal doesn't support cursor position requests" line in the conversation,
the prompt and the line being typed erased and drawn again around it. A terminal that answers
(the test answers here as xterm does) keeps CPR, and with it the toolbar."""

from __future__ import annotations

import re
import time

import pexpect
import pytest
from fakeserver import Script
from repl_spawn import PROMPT, repl_children

CPR = "\x1b[6n"
WARNING = "doesn't support cursor position requests"


@pytest.fixture
def repl(home, server):
    yield from repl_children(home, server, width=100, cpr=True)


def wait_for_request(server, count: int, timeout: float = 10) -> float:
    """Seconds until the server has `count` requests."""
    start = time.monotonic()
    while len(server.requests) < count:
        assert time.monotonic() - start < timeout, [r.body["messages"][-1] for r in server.requests]
        time.sleep(0.01)
    return time.monotonic() - start


def asked(server) -> list[str]:
    return [r.body["messages"][-1]["content"] for r in server.requests]


def test_a_terminal_that_never_answers_is_asked_once_and_warned_of_never(repl, server):
    child = repl("-m", "openai:echo")
    child.send("first\r")  # typed as the prompt shows: before any reply could have come
    child.expect_exact("echo: first")
    child.expect_exact(PROMPT)
    child.send("second\r")
    waited = wait_for_request(server, 2)
    child.expect_exact("echo: second")
    child.expect_exact(PROMPT)
    time.sleep(2.5)  # a prompt up past prompt-toolkit's own two-second CPR timeout
    child.send("third\r")
    child.expect_exact("echo: third")
    child.expect_exact(PROMPT)
    shown = child.logfile_read.getvalue()
    assert WARNING not in shown
    assert shown.count(CPR) == 1, shown.count(CPR)  # one request unanswered, none asked again
    assert waited < 0.9, waited  # Enter sends at once: no second wait for a reply (it was 1 s each)
    assert asked(server) == ["first", "second", "third"]


def test_lines_typed_while_the_first_reply_is_awaited_are_kept(repl, server):
    """Keys that come while prompt-toolkit still waits for the first reply (after Enter) are read
    into its typeahead store and are the next prompt's, in order; so are keys typed during the answer."""
    server.script("slow", Script(chunks=["alpha\n\n", "beta\n\n", "gamma\n"], delay=0.3))
    child = repl("-m", "openai:slow")
    child.send("one\rtwo\r")
    child.expect_exact("alpha")
    child.send("three\r")  # during a streamed answer
    child.send("fou")
    wait_for_request(server, 3, timeout=15)
    child.send("r\r")
    wait_for_request(server, 4, timeout=15)
    assert asked(server) == ["one", "two", "three", "four"]
    assert WARNING not in child.logfile_read.getvalue()


def answer_cprs(child: pexpect.spawn, until: str, row: int = 5) -> int:
    """Play a terminal that answers CPR (as xterm does: ESC[row;colR) until `until` shows; the
    number of requests answered."""
    answered = 0
    while child.expect_exact([CPR, until]) == 0:
        child.send(f"\x1b[{row};1R")
        answered += 1
    return answered


def test_a_terminal_that_answers_keeps_cpr_and_the_toolbar(repl, server):
    child = repl("-m", "openai:echo")
    answered = 1 if CPR in child.logfile_read.getvalue() else 0
    child.send("\x1b[5;1R")  # the reply to the first prompt's request
    child.expect_exact("0 turns")  # the toolbar: drawn once the height below the prompt is known
    for turns, word in enumerate(("first", "second"), 1):
        child.send(word + "\r")
        answered += answer_cprs(child, f" {turns} turn")  # the next prompt's toolbar
        assert f"echo: {word}" in child.logfile_read.getvalue()
    assert answered >= 2  # asked again at each prompt: CPR stays on where it is answered
    assert asked(server) == ["first", "second"]
    assert WARNING not in child.logfile_read.getvalue()
    assert not re.search(r"\^\[\[\d+;\d+R", child.logfile_read.getvalue())  # no reply shown as text
