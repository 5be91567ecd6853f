"""Continuing an answer cut off at the token limit (`--continue-answer`, REPL `/continue`), through the
real SDKs against the fake server: what each API is sent, and that the log keeps one answer."""

from __future__ import annotations

import json

import pytest
from conftest import PROVIDERS
from fakeserver import Script
from test_repl import PROMPT, ask, exchange
from test_repl import repl as repl  # noqa: F401 — the pexpect fixture

from streamchat.exit_status import ExitStatus
from streamchat.service import CONTINUE

LIMIT = {"openai": "length", "compat": "length", "anthropic": "max_tokens"}


def cut(server, provider: str) -> None:
    """The model `cut` stops at the token limit mid-sentence (its last piece ends in a space)."""
    server.script("cut", Script(chunks=["The answer ", "is cut "], finish_reason=LIMIT[provider], usage=(10, 2)))


def rest(server, provider: str) -> None:
    """…and then finishes it. After a prefill (Anthropic) the text resumes after the stripped space."""
    server.script("cut", Script(chunks=[" off" if provider == "anthropic" else "off", " here."], usage=(20, 2)))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_continue_answer_continues_in_each_apis_terms_and_logs_one_answer(invoke, server, provider):
    cut(server, provider)
    first = invoke("-m", f"{provider}:cut", "--raw", "Tell me")  # --raw: the bytes as streamed, no newline added
    assert first.code == 0 and first.out == "The answer is cut "
    assert "cut off at the token limit (2 tokens) — --continue-answer continues it" in first.stderr
    rest(server, provider)
    more = invoke("--continue-answer", "--raw")
    assert more.code == 0, more.stderr
    assert more.out == (" off here." if provider == "anthropic" else "off here.")
    if provider != "anthropic":
        assert first.out + more.out == "The answer is cut off here."  # `>> answer.txt` twice reads as one
    sent = server.last_messages()
    if provider == "anthropic":  # a prefill: the partial answer ends the request, without its trailing space
        assert sent == [{"role": "user", "content": "Tell me"}, {"role": "assistant", "content": "The answer is cut"}]
    else:
        assert sent == [{"role": "user", "content": "Tell me"},
                        {"role": "assistant", "content": "The answer is cut "},
                        {"role": "user", "content": CONTINUE}]
    shown = invoke("history", "show", "1").out
    assert shown.count("## Assistant") == 1 and "The answer is cut off here.\n" in shown
    exported = json.loads(invoke("history", "export", "1", "--format", "json").out)["messages"]
    assert [(m["role"], m["content"]) for m in exported] == [("user", "Tell me"), ("assistant", "The answer is cut off here.")]
    assert exported[1]["output_tokens"] == 4 and exported[1]["input_tokens"] == 30
    assert exported[1]["finish_reason"] in ("stop", "end_turn")
    assert "1\tassistant" in invoke("history", "search", "here").out  # the search index has the joined text
    invoke("-m", f"{provider}:echo", "-c", "next")
    assert [m["content"] for m in server.last_messages()][:2] == ["Tell me", "The answer is cut off here."]


def test_anthropic_with_extended_thinking_is_asked_to_continue_rather_than_prefilled(invoke, server):
    """Anthropic refuses a prefill while thinking is on: the partial answer and the instruction go instead."""
    cut(server, "anthropic")
    assert invoke("-m", "anthropic:cut", "Tell me").code == 0
    rest(server, "openai")
    r = invoke("--continue-answer", "--reasoning", "low")
    assert r.code == 0, r.stderr
    assert server.requests[-1].body["thinking"]["type"] == "enabled"
    assert server.last_messages()[1:] == [{"role": "assistant", "content": "The answer is cut "},
                                          {"role": "user", "content": CONTINUE}]


def test_an_answer_that_was_not_cut_off_is_one_line_and_exit_2(invoke, server):
    assert invoke("-m", "openai:echo", "q").code == 0
    sent = len(server.requests)
    r = invoke("--continue-answer")
    assert r.code == ExitStatus.USAGE and r.out == ""
    assert r.stderr.count("\n") == 1 and "did not stop at the token limit" in r.stderr, r.stderr
    with_prompt = invoke("--continue-answer", "more please")
    assert with_prompt.code == ExitStatus.USAGE and with_prompt.stderr.count("\n") == 1
    assert len(server.requests) == sent  # nothing was sent


def test_continue_answer_follows_the_named_session(invoke, server):
    cut(server, "openai")
    assert invoke("-m", "openai:cut", "-S", "work", "Tell me").code == 0
    assert invoke("-m", "openai:echo", "-S", "play", "other").code == 0  # the latest conversation, not cut off
    rest(server, "openai")
    r = invoke("-S", "work", "--continue-answer")
    assert r.code == 0 and r.out == "off here.\n", r.stderr
    assert [m["content"] for m in server.last_messages()][:2] == ["Tell me", "The answer is cut "]


def test_repl_continue_joins_the_answer(repl, server):  # noqa: F811
    cut(server, "anthropic")
    child = repl("-m", "anthropic:cut")
    ask(child, "Tell me")
    child.expect_exact("/continue continues it")
    child.expect_exact(PROMPT)
    rest(server, "anthropic")
    exchange(child, "/continue", "off here.")
    assert server.last_messages()[-1] == {"role": "assistant", "content": "The answer is cut"}
    exchange(child, "/continue", "did not stop at the token limit")  # complete now: nothing to continue
    server.script("cut", Script(chunks=["ok"]))
    exchange(child, "and?", "ok")
    assert [m["content"] for m in server.last_messages()] == ["Tell me", "The answer is cut off here.", "and?"]


def test_a_continuation_that_fails_before_any_text_leaves_the_answer_to_continue_again(invoke, server, home):
    cut(server, "openai")
    assert invoke("-m", "openai:cut", "Tell me").code == 0
    server.script("cut", Script(status=500, error_type="server_error"))
    failed = invoke("--continue-answer", "--no-retry")
    assert failed.code == ExitStatus.SERVER and failed.out == ""
    rest(server, "openai")
    again = invoke("--continue-answer")
    assert again.code == 0 and again.out == "off here.\n", again.stderr
    exported = json.loads(invoke("history", "export", "1", "--format", "json").out)["messages"]
    assert [m["content"] for m in exported] == ["Tell me", "The answer is cut off here."]


def test_joined_sums_the_figures_and_keeps_an_unknown_price_unknown():
    from streamchat.events import Outcome, Stats, TurnResult
    from streamchat.service import joined

    first = TurnResult("ab ", finish_reason="length", stats=Stats(100.0, 900.0, 3, 10, 0.002))
    more = TurnResult("cd", finish_reason="stop", stats=Stats(50.0, 400.0, 2, 20, None), outcome=Outcome.INTERRUPTED)
    whole = joined(first, "ab ", more)
    assert (whole.text, whole.finish_reason, whole.outcome) == ("ab cd", "stop", Outcome.INTERRUPTED)
    assert whole.stats == Stats(100.0, 1300.0, 5, 30, None)
    priced = joined(first, "ab ", TurnResult("cd", stats=Stats(50.0, 400.0, 2, None, 0.001)))
    assert priced.stats.cost_usd == pytest.approx(0.003) and priced.stats.input_tokens == 10
