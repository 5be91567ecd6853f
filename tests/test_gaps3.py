"""Gaps closed in session 39: the REPL's words for the thinking/temperature refusal, …"""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("repl", [False, True])
def test_the_thinking_refusal_names_the_temperature_as_the_front_end_sets_it(repl):
    """In the REPL the refusal's hint said `/set temperature`, but its message still said
    `--temperature`, a flag the REPL has no use for: the message is now worded per front end too."""
    from terminal_emulator import ANSI, FakeTTY

    from streamchat.environment import Environment
    from streamchat.errors import UsageError
    from streamchat.events import Outcome, TurnResult
    from streamchat.providers.anthropic import _check_thinking
    from streamchat.providers.base import ChatRequest
    from streamchat.ui import UI, report_end

    with pytest.raises(UsageError) as refused:
        _check_thinking(ChatRequest(model="m", messages=(), temperature=0.2, reasoning="high"), forced_tool=False)
    err = FakeTTY()
    env = Environment(stdin=None, stdout=FakeTTY(), stderr=err, environ={"TERM": "xterm-256color", "COLUMNS": "200"})
    report_end(TurnResult(outcome=Outcome.FAILED, error=refused.value), UI(env), False, repl=repl)
    shown = ANSI.sub("", err.getvalue())
    assert "extended thinking" in shown, shown
    assert ("--temperature" in shown) != repl and ("--reasoning" in shown) != repl, shown
    assert ("/set temperature" in shown) == repl and ("/reasoning off" in shown) == repl, shown
