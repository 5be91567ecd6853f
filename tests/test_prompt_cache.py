"""Prompt caching (#31): where Anthropic cache breakpoints go, cache reads and writes in --stats and
--json, priced at their own rates; --no-cache and `cache = false` send none; OpenAI's cached input."""

from __future__ import annotations

import json

import pytest
from fakeserver import Script

from streamchat.config import BUILTIN_PROVIDERS, Settings
from streamchat.cost import turn_cost
from streamchat.events import Stats, Usage
from streamchat.providers.prompt_cache import Segment, breakpoints, mark, minimum_tokens

EPHEMERAL = {"type": "ephemeral"}


def segs(*spec: tuple[str, int]) -> list[Segment]:
    return [Segment(kind, tokens) for kind, tokens in spec]  # type: ignore[arg-type]


# -- placement (pure) ------------------------------------------------------------------------------

def test_a_short_conversation_gets_no_breakpoint():
    assert breakpoints(segs(("system", 50), ("user", 100), ("assistant", 300), ("user", 20)), 1024) == ()
    assert breakpoints([], 1024) == ()


def test_the_last_turn_once_the_prefix_is_long_enough():
    # each message is short; the conversation as a whole passes the minimum at the last turn
    assert breakpoints(segs(("user", 400), ("assistant", 400), ("user", 300)), 1024) == (2,)


def test_a_long_conversation_marks_system_previous_request_and_last_turn():
    history = segs(("system", 1500), ("user", 100), ("assistant", 400), ("user", 50), ("assistant", 600), ("user", 30))
    # 0: the system prompt (long enough alone); 3: where the previous request ended; 5: the last turn
    assert breakpoints(history, 1024) == (0, 3, 5)


def test_a_short_system_prompt_is_not_marked_alone():
    history = segs(("system", 30), ("user", 2000), ("assistant", 100), ("user", 10))
    assert breakpoints(history, 1024) == (1, 3)  # the -f context (large on its own, and the previous request's end)


def test_large_context_is_marked_and_never_more_than_four():
    history = segs(("tools", 200), ("system", 900), ("user", 3000), ("assistant", 50), ("user", 2500),
                   ("assistant", 50), ("user", 2000), ("assistant", 50), ("user", 10))
    marks = breakpoints(history, 1024)
    assert len(marks) == 4
    # the last turn, the previous request's end, the head (tools + system: 1100 tokens), the latest large one
    assert marks == (1, 4, 6, 8)
    assert breakpoints(history, 1024, most=2) == (6, 8)


def test_tools_alone_are_the_head():
    assert breakpoints(segs(("tools", 1200), ("user", 10)), 1024) == (0, 1)


def test_a_tool_loop_marks_the_question_the_previous_step_ended_with():
    history = segs(("user", 1100), ("assistant", 40), ("user", 300))  # question, tool call, its result
    assert breakpoints(history, 1024) == (0, 2)


def test_haiku_caches_from_2048_tokens_sonnet_and_opus_from_1024():
    assert minimum_tokens("claude-3-5-haiku-20241022") == 2048
    assert minimum_tokens("claude-sonnet-4-5") == minimum_tokens("claude-opus-4-1") == 1024
    history = segs(("user", 1500), ("assistant", 10), ("user", 10))
    assert breakpoints(history, minimum_tokens("claude-sonnet-4-5")) == (0, 2)
    assert breakpoints(history, minimum_tokens("claude-3-haiku-20240307")) == ()


def test_mark_puts_cache_control_on_the_wire_blocks():
    big = "word " * 1200  # ~1500 tokens
    kwargs = {"model": "m", "system": "be brief " * 600, "tools": [{"name": "a"}, {"name": "b"}],
              "messages": [{"role": "user", "content": big},
                           {"role": "assistant", "content": [{"type": "text", "text": "ok"},
                                                             {"type": "thinking", "thinking": "x"}]},
                           {"role": "user", "content": [{"type": "image", "source": {}}, {"type": "text", "text": "q"}]}]}
    out = mark(kwargs, "claude-sonnet-4-5")
    assert out["system"] == [{"type": "text", "text": kwargs["system"], "cache_control": EPHEMERAL}]
    assert out["tools"] == kwargs["tools"]  # the system prompt ends the head, not the tools
    assert out["messages"][0]["content"] == [{"type": "text", "text": big, "cache_control": EPHEMERAL}]
    assert out["messages"][1] == kwargs["messages"][1]
    assert out["messages"][2]["content"][-1] == {"type": "text", "text": "q", "cache_control": EPHEMERAL}
    assert kwargs["messages"][0]["content"] == big  # the request given is not changed
    assert json.dumps(out).count("cache_control") == 3


def test_an_empty_or_thinking_block_is_never_marked():
    kwargs = {"messages": [{"role": "user", "content": "x" * 6000},
                           {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "thinking",
                                                                                         "thinking": "t"}]},
                           {"role": "assistant", "content": ""}]}
    out = mark(kwargs, "claude-sonnet-4-5")
    assert out["messages"][2] == {"role": "assistant", "content": ""}
    assert out["messages"][0]["content"][0]["cache_control"] == EPHEMERAL


# -- usage and prices --------------------------------------------------------------------------------

def test_anthropic_usage_reports_cache_writes_apart():
    from streamchat.providers._wire import AnthropicParser, events

    lines = ["event: message_start",
             'data: {"message":{"usage":{"input_tokens":200,"cache_read_input_tokens":800,'
             '"cache_creation_input_tokens":1500}}}', "",
             "event: message_delta", 'data: {"delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":1}}', "",
             "event: message_stop", "data: {}", ""]
    usage = [e for e in events([line + "\n" for line in lines], AnthropicParser(provider="anthropic", model="m"))
             if isinstance(e, Usage)]
    assert usage == [Usage(2500, 1, 800, 1500)]


def test_cache_reads_and_writes_are_priced_at_their_rates():
    # claude-sonnet-4-5: $3 input, $0.30 cache read, $3.75 cache write, $15 output per million tokens
    stats = Stats(tokens=1000, input_tokens=10_000, cached_tokens=4000, cache_write_tokens=2000)
    cost = turn_cost(Settings(), BUILTIN_PROVIDERS["anthropic"], "claude-sonnet-4-5", stats)
    assert cost == pytest.approx((4000 * 3 + 4000 * 0.30 + 2000 * 3.75 + 1000 * 15) / 1e6)  # 0.0357
    # gpt-4o-mini: $0.15 input, $0.075 cached input, $0.60 output
    stats = Stats(tokens=500, input_tokens=1000, cached_tokens=800)
    cost = turn_cost(Settings(), BUILTIN_PROVIDERS["openai"], "gpt-4o-mini", stats)
    assert cost == pytest.approx((200 * 0.15 + 800 * 0.075 + 500 * 0.60) / 1e6)


def test_stats_line_and_dict_show_the_cache():
    stats = Stats(tokens=3, input_tokens=2000, cached_tokens=1500, cache_write_tokens=300)
    assert " · cache 1.5k read, 300 written · " in stats.summary()
    assert stats.as_dict()["cache_read_tokens"] == 1500 and stats.as_dict()["cache_write_tokens"] == 300
    assert "cache" not in Stats(tokens=3, input_tokens=20).summary()


# -- through the CLI and the real SDKs ---------------------------------------------------------------

MODEL = "claude-sonnet-4-5"


def _marks(record) -> int:
    return record.raw.count(b'"cache_control"')


@pytest.fixture
def big_file(home):
    path = home / "notes.txt"
    path.write_text("".join(f"line {i}: the quick brown fox jumps over the lazy dog\n" for i in range(150)))
    return path  # ~8 KB: ~2,000 tokens


def test_a_long_anthropic_conversation_carries_cache_control_and_reads_the_cache(invoke, server, big_file):
    server.script(MODEL, Script(chunks=["noted"]))
    first = invoke("-m", f"anthropic:{MODEL}", "--stats", "-f", str(big_file), "summarize")
    assert first.code == 0, first.stderr
    body = server.requests[-1].body
    assert body["messages"][-1]["content"][-1]["cache_control"] == EPHEMERAL
    cache = first.stderr.split(" · cache ")[1].split(" · ")[0]
    assert cache.endswith(" written") and "read" not in cache, first.stderr  # nothing to read yet

    second = invoke("-m", f"anthropic:{MODEL}", "-c", "--json", "and the last line?")
    assert second.code == 0, second.stderr
    body = server.requests[-1].body
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][0]["content"][-1]["cache_control"] == EPHEMERAL  # the -f context, read back
    assert body["messages"][-1]["content"][-1]["cache_control"] == EPHEMERAL  # the last turn, for the next
    events = [json.loads(line) for line in second.out.splitlines()]
    usage = [e for e in events if e["type"] == "usage"][-1]
    assert usage["cache_read_tokens"] > 1024 and usage["cache_write_tokens"] > 0
    done = events[-1]
    assert done["stats"]["cache_read_tokens"] == usage["cache_read_tokens"]
    uncached = usage["input_tokens"] - usage["cache_read_tokens"] - usage["cache_write_tokens"]
    expected = (uncached * 3 + usage["cache_read_tokens"] * 0.30 + usage["cache_write_tokens"] * 3.75
                + usage["output_tokens"] * 15) / 1e6
    assert done["cost_usd"] == pytest.approx(expected)

    third = invoke("-m", f"anthropic:{MODEL}", "-c", "--stats", "thanks")
    read = third.stderr.split(" · cache ")[1].split(" read")[0]
    assert third.code == 0 and read.endswith("k") and float(read[:-1]) > 1, third.stderr


def test_no_cache_and_config_cache_false_send_no_breakpoints(invoke, server, home, big_file):
    server.script(MODEL, Script(chunks=["noted"]))
    r = invoke("-m", f"anthropic:{MODEL}", "--no-cache", "--stats", "-f", str(big_file), "summarize")
    assert r.code == 0, r.stderr
    assert _marks(server.requests[-1]) == 0 and " · cache " not in r.stderr
    config = home / "nocache.toml"
    config.write_text("cache = false\n")
    r = invoke("--config", str(config), "-m", f"anthropic:{MODEL}", "-f", str(big_file), "summarize")
    assert r.code == 0 and _marks(server.requests[-1]) == 0
    r = invoke("-m", f"anthropic:{MODEL}", "-f", str(big_file), "summarize")
    assert r.code == 0 and _marks(server.requests[-1]) == 1  # on by default: the same question is marked


def test_a_short_question_is_not_marked(invoke, server):
    server.script(MODEL, Script(chunks=["hi"]))
    assert invoke("-m", f"anthropic:{MODEL}", "hello").code == 0
    assert _marks(server.requests[-1]) == 0


def test_openai_cached_input_is_shown_and_priced_as_cached(invoke, server):
    server.script("gpt-4o-mini", Script(chunks=["a", "b"], usage=(1000, 500), cached=800))
    r = invoke("-m", "openai:gpt-4o-mini", "--json", "q")
    events = [json.loads(line) for line in r.out.splitlines()]
    assert [e["cache_read_tokens"] for e in events if e["type"] == "usage"] == [800]
    assert events[-1]["cost_usd"] == pytest.approx((200 * 0.15 + 800 * 0.075 + 500 * 0.60) / 1e6)
    assert b"cache_control" not in server.requests[-1].raw
    r = invoke("-m", "openai:gpt-4o-mini", "--stats", "q")
    assert " · cache 800 read · cost $0.0004" in r.stderr


def test_a_tool_loop_sums_each_steps_cache_reads_and_writes(invoke, server, home, tmp_path):
    import sys

    from test_tools import MCP_SERVER, TWO_CALLS, env_with

    (tmp_path / "a.py").write_text("import httpx\n")
    env = env_with(home, server, f'[mcp.files]\ncommand = "{sys.executable}"\nargs = ["{MCP_SERVER}", "{tmp_path}"]\n')
    server.script(MODEL, Script(chunks=["Looking."], tool_calls=TWO_CALLS))
    system = "You answer questions about this project. " * 150  # ~1,500 tokens: cached from the first step
    r = invoke("-m", f"anthropic:{MODEL}", "-s", system, "--tools", "files", "--approve", "all", "--json", "q", env=env)
    assert r.code == 0, r.stderr
    events = [json.loads(line) for line in r.out.splitlines()]
    steps = [e for e in events if e["type"] == "usage"]
    assert len(steps) == 2 and steps[0]["cache_read_tokens"] == 0 and steps[1]["cache_read_tokens"] > 1024
    stats = events[-1]["stats"]
    assert stats["cache_read_tokens"] == sum(s["cache_read_tokens"] for s in steps)
    assert stats["cache_write_tokens"] == sum(s["cache_write_tokens"] for s in steps) > steps[-1]["cache_write_tokens"]
