"""Polish pass 2: reasoning wrapped by word on a terminal; REPL words in Anthropic's refusal."""

from __future__ import annotations

import pytest
from repl_spawn import PROMPT, repl_children
from terminal_emulator import Terminal, tty_env

from streamchat.events import ReasoningDelta, TextDelta, TurnResult
from streamchat.sinks.terminal import MarkdownSink
from streamchat.ui import UI


def test_reasoning_wraps_by_word_with_no_leading_space_on_a_terminal():
    """Reasoning streamed as " thoughtN" pieces wrapped where the terminal's width fell: continuation
    rows began with the space (" thought9 thought10") and words broke across rows."""
    env, out, err = tty_env(XTERM_VERSION="pyte")
    sink = MarkdownSink(env, UI(env), size=lambda: (40, 24), timer=False)
    sink.begin()
    words = [f"thought{i}" for i in range(1, 40)]
    for i, word in enumerate(words):
        sink.feed(ReasoningDelta(("" if i == 0 else " ") + word[:4]))
        sink.feed(ReasoningDelta(word[4:]))
    sink.feed(TextDelta("The answer"))
    sink.end(TurnResult())
    term = Terminal(40, 24)
    term.feed(err.getvalue())
    rows = term.lines()
    assert all(row and not row.startswith(" ") and len(row) <= 40 for row in rows), rows
    assert " ".join(rows).split() == words, rows  # no word broken across rows, none lost
    assert len(rows) > 3
    assert "thought" not in out.getvalue() and "The answer" in out.getvalue()


@pytest.fixture
def repl(home, server):
    yield from repl_children(home, server)


def test_anthropics_thinking_and_schema_refusal_names_repl_commands_in_the_repl(repl):
    """In the REPL, the refusal of /reasoning with /schema on Anthropic said "--reasoning cannot go with
    --schema" and "--reasoning off": flags the REPL does not take."""
    child = repl("-m", "anthropic:echo")
    for line, said in (("/reasoning high", "reasoning: high"), ("/schema 'name, age int'", "schema: {")):
        child.sendline(line)
        child.expect_exact(said)  # the prompt's › is also in the line's echo: wait for what the command says
        child.expect_exact(PROMPT)
    child.sendline("hello")
    child.expect_exact("/reasoning off, or /schema off")
    child.expect_exact(PROMPT)
    shown = child.logfile_read.getvalue()
    assert "--reasoning" not in shown and "--schema" not in shown, shown


def test_the_command_line_keeps_its_flags_in_the_thinking_and_schema_refusal(invoke, server):
    r = invoke("-m", "anthropic:echo", "--reasoning", "low", "--schema", "name, age int", "q")
    assert r.code == 2 and not server.requests, r.stderr
    assert "--reasoning off, or leave out --schema" in r.stderr and "/schema" not in r.stderr, r.stderr
