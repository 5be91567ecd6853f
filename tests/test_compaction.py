"""Compaction: a conversation longer than the model's window goes on, its older turns sent as a
summary the model wrote. The selection is pure (unit tests); the rest runs the real CLI and REPL
against the fake server, which refuses a prompt over its limit with each API's own error."""

from __future__ import annotations

import json
import subprocess

import pexpect
import pytest
from conftest import STREAMCHAT, base_env
from fakeserver import Script, prompt_tokens
from test_repl import exchange

from streamchat.compaction import HEADING, answer_margin, clip, split_point, summary_budget, system_with
from streamchat.conversation import Conversation, Summary, Turn
from streamchat.events import Stats, TurnResult

ANSWER = "Some padded answer words. " * 50  # ~1,300 characters: ~330 tokens a turn


# -- which turns to summarize (pure) ---------------------------------------------------------
def test_split_point_summarizes_the_fewest_oldest_turns_that_make_room():
    costs = [100, 200, 300, 400]
    assert split_point(costs, 0, 1000) == 0  # fits: nothing to summarize
    assert split_point(costs, 0, 700) == 2  # 300 + 400 stay
    assert split_point(costs, 0, 699) == 3
    assert split_point(costs, 0, 10) == 4  # even the newest alone is too big: all of them
    assert split_point(costs, 3, 1000) == 3  # turns already summarized stay summarized
    assert split_point([], 0, 10) == 0


def test_clip_keeps_short_texts_whole_and_shares_the_rest():
    assert clip(["abc", "de"], 10) == ["abc", "de"]
    out = clip(["x" * 5, "y" * 100, "z" * 100], 65)
    assert out[0] == "x" * 5  # under its share: whole
    assert out[1] == "y" * 29 + "…" and out[2] == "z" * 29 + "…"
    assert sum(map(len, out)) <= 65


def test_budgets_keep_room_for_the_answer_and_the_summary():
    assert answer_margin(2500, None) == 625 and answer_margin(2500, 100) == 100 and answer_margin(2500, 9000) == 1250
    assert answer_margin(1_000_000, None) == 4096
    assert summary_budget(2500) == 416 and summary_budget(200_000) == 2048


def test_a_window_is_configured_for_a_provider_or_per_model():
    from streamchat.config import parse_settings
    from streamchat.cost import context_window, window_from_database

    settings = parse_settings({"providers": {"a": {"type": "openai", "context": 9000},
                                             "b": {"type": "openai", "context": {"small": 2500}}}})
    a, b = settings.providers["a"], settings.providers["b"]
    assert context_window(settings, a, "any") == 9000 and context_window(settings, b, "small") == 2500
    assert not window_from_database(b, "small") and window_from_database(b, "gpt-4o")


def _turn(n: int, answer_id: int | None = None) -> Turn:
    return Turn(f"q{n}", TurnResult(f"a{n}", "", "stop", Stats(None, 0.0, 1)), answer_id)


def test_a_summary_stands_in_for_its_turns_until_they_change():
    conv = Conversation(turns=[_turn(1, 2), _turn(2, 4), _turn(3, 6)], summary=Summary("S", 2, 4, 10))
    assert [m.content for m in conv.history(conv.current_summary)] == ["q3", "a3"]
    assert system_with("be brief", conv.current_summary) == f"be brief\n\n{HEADING}\n\nS"
    assert "Compacted" in conv.transcript("t") and "> S" in conv.transcript("t")
    conv.drop_last()
    conv.drop_last()  # /undo past the summary's end: it no longer stands in for anything
    assert conv.current_summary is None
    conv.turns.append(_turn(2, 99))  # another answer in its place (/retry): not the one summarized
    assert conv.current_summary is None


def test_a_request_without_a_new_question_still_ends_with_the_last_turn():
    """Continuing a cut-off answer sends the conversation ending with it: a summary that stands in
    for every turn (/compact) would leave the request ending with the system prompt instead."""
    from streamchat.config import parse_settings
    from streamchat.service import ChatSession, Overrides

    settings = parse_settings({"providers": {"summarized": {"type": "openai", "api_key": "k"}}})
    conv = Conversation(turns=[_turn(1, 2), _turn(2, 4)], summary=Summary("S", 2, 4))
    session = ChatSession(settings, Overrides(model="summarized:m"), conversation=conv)
    assert [m.content for m in session.request("q3").messages][1:] == ["q3"]  # a new question: the summary stands in
    assert [m.content for m in session.request(None).messages] == ["q1", "a1", "q2", "a2"]


# -- the CLI against a small window --------------------------------------------------------
def _small_window(home, server, provider: str, window: int = 2500, limit: int = 2500) -> dict[str, str]:
    """A model `long` whose window the config says is `window`, on a server refusing prompts over `limit`."""
    server.script("long", Script(chunks=[ANSWER], context_limit=limit))
    env = base_env(home, server)
    with open(env["STREAMCHAT_CONFIG"], "a") as cfg:
        cfg.write(f"\n[providers.{provider}]\ncontext = {{ long = {window} }}\n")  # this model's window
    return env


def _summary_requests(server) -> list:
    return [r for r in server.requests if "<conversation>" in json.dumps(r.body)]


@pytest.mark.slow
@pytest.mark.timeout(600)  # a CLI start per turn: ~1–5 s each on a busy machine
@pytest.mark.parametrize("provider,turns", [("openai", 31), ("anthropic", 12)])  # 12: compacted, then extended
def test_thirty_turns_of_long_answers_fit_a_2500_token_window(invoke, server, home, provider, turns):
    env = _small_window(home, server, provider)
    notices = []
    for n in range(turns):
        r = invoke("-m", f"{provider}:long", *(["-c"] if n else []), f"question {n}", env=env)
        assert r.code == 0, (n, r.stderr)
        assert r.out.startswith("Some padded answer")
        notices += [line for line in r.stderr.splitlines() if "compacted" in line]
    assert all(prompt_tokens(req.body) <= 2500 for req in server.requests)  # none refused
    assert len(notices) >= 2 and all("tokens saved" in n for n in notices)  # compacted, then extended
    summaries = _summary_requests(server)
    assert "<earlier-summary>" in json.dumps(summaries[-1].body)  # a later summary builds on the earlier one
    shown = invoke("history", "show", "1", env=env)
    assert all(f"question {n}\n" in shown.out for n in range(turns))  # every turn is still in the log
    assert shown.out.count("## Assistant") == turns and "_Compacted: the model is sent this summary" in shown.out


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_refusal_for_length_compacts_and_retries_once(invoke, server, home, provider):
    """The config says the window is large, so nothing compacts ahead; the server refuses the third
    question's request with its own context-length error: compacted, sent again, answered."""
    env = _small_window(home, server, provider, window=100_000, limit=600)
    for n in range(2):
        assert invoke("-m", f"{provider}:long", *(["-c"] if n else []), f"question {n}", env=env).code == 0
    r = invoke("-m", f"{provider}:long", "-c", "question 2", env=env)
    assert r.code == 0 and r.out.startswith("Some padded answer"), r.stderr
    assert "compacted 2 earlier turns" in r.stderr
    assert len(server.requests) == 5  # two turns, the refused request, the summary, the retry
    retried = server.requests[-1].body
    assert prompt_tokens(retried) <= 600 and json.dumps(retried).count("question") == 1
    # the summary was logged: the next turn reuses it instead of asking for it again
    assert invoke("-m", f"{provider}:long", "-c", "question 3", env=env).code == 0
    assert len(_summary_requests(server)) == 1 and "question 3" in json.dumps(server.requests[-1].body)
    exported = json.loads(invoke("history", "export", "1", "--format", "json", env=env).out)
    assert [(s["turns"], s["through_id"]) for s in exported["summaries"]] == [(2, exported["messages"][3]["id"])]


def test_no_compact_sends_everything_and_the_refusal_is_exit_4(invoke, server, home):
    env = _small_window(home, server, "openai", window=100_000, limit=600)
    for n in range(2):
        assert invoke("-m", "openai:long", *(["-c"] if n else []), f"question {n}", env=env).code == 0
    r = invoke("-m", "openai:long", "-c", "--no-compact", "question 2", env=env)
    assert r.code == 4 and "too long" in r.stderr and "Traceback" not in r.stderr
    assert not _summary_requests(server)


def test_a_question_too_long_even_after_compacting_is_refused_before_sending(invoke, server, home):
    env = _small_window(home, server, "openai")
    assert invoke("-m", "openai:long", "question 0", env=env).code == 0
    r = invoke("-m", "openai:long", "-c", "word " * 20_000, env=env)
    assert r.code == 4 and "too long" in r.stderr and len(server.requests) == 1


# -- the REPL ----------------------------------------------------------------------------------
def test_repl_compact_and_uncompact(home, server):
    env = base_env(home, server, PROMPT_TOOLKIT_NO_CPR="1")
    child = pexpect.spawn(STREAMCHAT, ["-m", "openai:echo"], env=env, encoding="utf-8", dimensions=(30, 100), timeout=15)
    try:
        child.expect_exact("›")
        exchange(child, "first question", "echo: first question")
        exchange(child, "second question", "echo: second question")
        child.sendline("/compact")
        child.expect_exact("compacted 2 earlier turns into a summary")
        exchange(child, "third", "echo: third")
        sent = server.last_messages()
        assert sent[0]["role"] == "system" and HEADING in sent[0]["content"] and "first question" in sent[0]["content"]
        assert [m["content"] for m in sent[1:]] == ["third"]  # the summarized turns are not sent again
        child.sendline("/uncompact")
        child.expect_exact("compaction off")
        exchange(child, "fourth", "echo: fourth")
        assert [m["content"] for m in server.last_messages() if m["role"] == "user"] == [
            "first question", "second question", "third", "fourth"]
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    shown = subprocess.run([STREAMCHAT, "history", "show", "1"], env=env, capture_output=True, text=True, timeout=30)
    assert "turns 1–2 above" in shown.stdout and shown.stdout.count("## User") == 4
