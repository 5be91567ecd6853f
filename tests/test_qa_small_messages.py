"""Messages that said something untrue."""

from __future__ import annotations

from streamchat.exit_status import ExitStatus


def test_continue_answer_with_no_answer_at_all_says_so(invoke, server):
    r = invoke("-m", "openai:echo", "--continue-answer")
    assert r.code == ExitStatus.USAGE
    assert "error: there is no answer to continue" in r.stderr and "token limit;" not in r.stderr, r.stderr
