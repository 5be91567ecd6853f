"""QA pass 2: the REPL as a demanding terminal user types it (pexpect, against the fake server)."""

from __future__ import annotations

import contextlib
import io
import signal

import pexpect
import pytest
from conftest import STREAMCHAT, base_env

PROMPT = "›"


@pytest.fixture
def repl(home, server):
    children: list[pexpect.spawn] = []

    def spawn(*args: str) -> pexpect.spawn:
        env = base_env(home, server, PROMPT_TOOLKIT_NO_CPR="1")
        child = pexpect.spawn(STREAMCHAT, list(args), env=env, encoding="utf-8", dimensions=(30, 100), timeout=15)
        child.logfile_read = io.StringIO()
        child.expect_exact(PROMPT)
        children.append(child)
        return child

    yield spawn
    for child in children:
        if child.isalive():
            child.kill(signal.SIGHUP)
            with contextlib.suppress(pexpect.ExceptionPexpect):
                child.expect(pexpect.EOF, timeout=10)
        child.close(force=True)


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
