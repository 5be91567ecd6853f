"""Provider options (-o NAME=VALUE, config, roles), --reasoning and --hide-reasoning.

The option tables and their checker are pure (unit tests); what reaches the provider is asserted
on the request bodies the real openai and anthropic SDKs send to the fake server.
"""

from __future__ import annotations

import json
import math

import pexpect
import pytest
from conftest import base_env

from streamchat.errors import ConfigError, UsageError
from streamchat.providers.options import (
    BadValue,
    Option,
    Text,
    check,
    coerce,
    options_for,
    split_assignment,
    to_wire,
)

OPENAI = options_for("openai")
ANTHROPIC = options_for("anthropic")


# -- the checker (pure) --------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "text", "typed"), [
    ("top_p", "0.5", 0.5), ("seed", "7", 7), ("seed", "-3", -3), ("stop", "END", ("END",)),
    ("stop", '["a", "b"]', ("a", "b")), ("logit_bias", '{"50256": -100}', {"50256": -100}),
    ("service_tier", "flex", "flex"), ("parallel_tool_calls", "false", False), ("user", "u=1", "u=1"),
])
def test_text_is_parsed_into_the_apis_type(name, text, typed):
    value = coerce(OPENAI[name], Text(text))
    assert value == typed and type(value) is type(typed)


@pytest.mark.parametrize(("name", "text"), [
    ("top_p", "1.5"), ("top_p", "nan"), ("top_p", "x"), ("seed", "7.5"), ("stop", "[]"), ("stop", '["a", 1]'),
    ("stop", '["a","b","c","d","e"]'), ("stop", ""), ("logit_bias", "[1]"), ("logit_bias", "{bad"),
    ("service_tier", "fast"), ("parallel_tool_calls", "maybe"),
])
def test_bad_text_is_refused(name, text):
    with pytest.raises(BadValue):
        coerce(OPENAI[name], Text(text))


def test_typed_values_are_checked_not_parsed():
    """TOML and JSON values come typed: a string is that string, a number must be a number."""
    assert coerce(OPENAI["stop"], "[x") == ("[x",)
    assert coerce(OPENAI["stop"], ["a", "b"]) == ("a", "b")
    assert coerce(OPENAI["top_p"], 1) == 1.0 and isinstance(coerce(OPENAI["top_p"], 1), float)
    for name, value in (("seed", "7"), ("seed", True), ("seed", 1.0), ("top_p", "0.5"), ("logit_bias", "{}")):
        with pytest.raises(BadValue):
            coerce(OPENAI[name], value)


def test_check_names_the_option_and_its_type_or_lists_the_names():
    assert check(OPENAI, [("top_p", Text("0.5")), ("seed", Text("7")), ("top_p", Text("0.2"))],
                 provider="openai") == (("top_p", 0.2), ("seed", 7))
    with pytest.raises(UsageError) as err:
        check(OPENAI, [("bogus", Text("1"))], provider="openai")
    assert "bogus" in err.value.message and "top_p" in (err.value.hint or "") and "seed" in (err.value.hint or "")
    with pytest.raises(ConfigError, match="seed must be a whole number"):
        check(OPENAI, [("seed", "x")], provider="openai", where="[providers.openai] options", error=ConfigError)
    assert "seed" not in ANTHROPIC and "top_k" in ANTHROPIC and "top_k" not in OPENAI


def test_split_assignment_and_wire_names():
    assert split_assignment("stop=a=b") == ("stop", "a=b")
    with pytest.raises(UsageError):
        split_assignment("top_p")
    assert to_wire(ANTHROPIC, (("stop", ("END",)), ("top_k", 3))) == {"stop_sequences": ["END"], "top_k": 3}


def test_expected_reads_as_words():
    assert Option("x", "float", low=0, high=1).expected() == "a number from 0 to 1"
    assert Option("x", "int", low=1).expected() == "a whole number ≥ 1"
    assert Option("x", "float", low=-math.inf).expected() == "a number"


# -- through the CLI and the real SDKs ------------------------------------------------------------
def _sent(server) -> dict:
    body = dict(server.requests[-1].body)
    body.pop("messages", None)
    return body


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_options_reach_the_provider_typed(invoke, server, provider):
    r = invoke("-m", f"{provider}:echo", "-o", "top_p=0.5", "-o", "stop=END", "-o", 'stop=["a", "b"]', "q")
    assert r.code == 0, r.stderr
    body = _sent(server)
    assert body["top_p"] == 0.5
    assert body["stop" if provider == "openai" else "stop_sequences"] == ["a", "b"]  # the later -o wins


def test_openai_seed_and_others_arrive_typed(invoke, server):
    r = invoke("-m", "openai:echo", "-o", "top_p=0.5", "-o", "seed=7", "-o", 'logit_bias={"50256": -100}',
            "-o", "service_tier=flex", "q")
    assert r.code == 0, r.stderr
    body = _sent(server)
    assert body["top_p"] == 0.5 and body["seed"] == 7 and isinstance(body["seed"], int)
    assert body["logit_bias"] == {"50256": -100} and body["service_tier"] == "flex"
    assert b'"top_p":0.5' in server.requests[-1].raw.replace(b" ", b"")  # a number on the wire, not "0.5"


def test_anthropic_top_k(invoke, server):
    r = invoke("-m", "anthropic:echo", "-o", "top_k=40", "q")
    assert r.code == 0, r.stderr
    assert _sent(server)["top_k"] == 40


def test_unknown_option_is_exit_2_listing_the_names_and_sends_nothing(invoke, server):
    r = invoke("-m", "openai:echo", "-o", "bogus=1", "q")
    assert r.code == 2 and not server.requests
    assert "bogus" in r.stderr and "top_p" in r.stderr and "logit_bias" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = invoke("-m", "anthropic:echo", "-o", "seed=7", "q")  # Anthropic's API has no seed
    assert r.code == 2 and not server.requests and "top_k" in r.stderr


def test_bad_value_is_exit_2_naming_the_option_and_its_type(invoke, server):
    r = invoke("-m", "openai:echo", "-o", "seed=x", "q")
    assert r.code == 2 and not server.requests
    assert "seed" in r.stderr and "whole number" in r.stderr
    r = invoke("-m", "openai:echo", "-o", "top_p", "q")
    assert r.code == 2 and "NAME=VALUE" in r.stderr and not server.requests


def test_models_options_lists_each_providers_table(invoke):
    r = invoke("models", "--options", "anthropic")
    assert r.code == 0, r.stderr
    names = [line.split()[0] for line in r.out.splitlines()]
    assert names == list(ANTHROPIC)
    assert "a whole number ≥ 1" in r.out
    r = invoke("models", "--options", "compat")  # a configured name: its adapter type's table
    assert r.code == 0 and [line.split()[0] for line in r.out.splitlines()] == list(OPENAI)
    r = invoke("models", "--options", "nosuch")
    assert r.code == 2 and "nosuch" in r.stderr


def test_config_options_per_provider_and_model_under_flags(invoke, server, home):
    env = base_env(home, server)
    with open(env["STREAMCHAT_CONFIG"], "a") as f:
        f.write('[providers.openai]\noptions = { top_p = 0.9, seed = 1 }\n'
                '[providers.openai.model_options."echo"]\nseed = 2\nstop = "END"\n')
    r = invoke("-m", "openai:echo", "-o", "top_p=0.1", "q", env=env)
    assert r.code == 0, r.stderr
    body = _sent(server)
    assert (body["top_p"], body["seed"], body["stop"]) == (0.1, 2, ["END"])


def test_bad_config_option_is_a_config_error(invoke, server, home):
    env = base_env(home, server)
    with open(env["STREAMCHAT_CONFIG"], "a") as f:
        f.write('[providers.openai]\noptions = { seed = "7" }\n')
    r = invoke("-m", "openai:echo", "q", env=env)
    assert r.code == 3 and not server.requests
    assert "[providers.openai] options: seed must be" in r.stderr and "whole number" in r.stderr


def test_role_options_and_reasoning_under_the_flags(invoke, server, home):
    env = base_env(home, server)
    with open(env["STREAMCHAT_CONFIG"], "a") as f:
        f.write('[roles.careful]\nreasoning = "low"\noptions = { top_p = 0.3, seed = 5 }\n')
    r = invoke("-m", "openai:echo", "-r", "careful", "-o", "seed=9", "q", env=env)
    assert r.code == 0, r.stderr
    body = _sent(server)
    assert (body["top_p"], body["seed"], body["reasoning_effort"]) == (0.3, 9, "low")


# -- --reasoning ----------------------------------------------------------------------------------
def test_reasoning_reaches_openai_as_reasoning_effort(invoke, server):
    r = invoke("-m", "openai:echo", "--reasoning", "high", "q")
    assert r.code == 0, r.stderr
    assert _sent(server)["reasoning_effort"] == "high"
    invoke("-m", "openai:echo", "--reasoning", "off", "q")
    assert "reasoning_effort" not in _sent(server)


def test_reasoning_reaches_anthropic_as_extended_thinking(invoke, server):
    r = invoke("-m", "anthropic:echo", "--reasoning", "high", "--max-tokens", "1000", "q")
    assert r.code == 0, r.stderr
    body = _sent(server)
    budget = body["thinking"]["budget_tokens"]
    assert body["thinking"]["type"] == "enabled" and budget >= 1024
    assert body["max_tokens"] == 1000 + budget  # the budget is below max_tokens; the answer keeps its 1000
    invoke("-m", "anthropic:echo", "--reasoning", "low", "q")
    low = _sent(server)
    assert low["thinking"]["budget_tokens"] == 1024 and low["max_tokens"] > 1024
    assert low["thinking"]["budget_tokens"] < budget
    invoke("-m", "anthropic:echo", "--reasoning", "off", "q")
    assert "thinking" not in _sent(server)


def test_reasoning_is_refused_for_the_embedded_model(invoke, server):
    r = invoke("-m", "local:smollm2", "--reasoning", "high", "q")
    assert r.code == 2 and "cannot reason" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_reasoning_streams_dim_on_stderr_unless_hidden(invoke, server):
    server.script("thinker", chunks=["the answer"], reasoning=["let me ", "think"])
    r = invoke("-m", "anthropic:thinker", "--reasoning", "medium", "q")
    assert r.code == 0, r.stderr
    assert r.out.rstrip("\n") == "the answer" and "let me think" in r.stderr
    r = invoke("-m", "anthropic:thinker", "--reasoning", "medium", "--hide-reasoning", "q")
    assert r.code == 0, r.stderr
    assert r.out.rstrip("\n") == "the answer" and "think" not in r.stderr
    r = invoke("-m", "anthropic:thinker", "--hide-reasoning", "--json", "q")  # --json keeps it: it is data
    assert any(json.loads(line).get("type") == "reasoning" for line in r.out.splitlines())


# -- the REPL: /set and /reasoning -----------------------------------------------------------------
def test_set_values_go_over_the_flags_and_show_in_the_toolbar():
    from streamchat.repl_commands import set_label, with_set
    from streamchat.service import Overrides

    flags = Overrides(temperature=0.7, params=(("seed", Text("1")),), reasoning="low")
    over = with_set(flags, {"temperature": "0.2", "seed": "7", "top_p": "0.5"}, "high")
    assert over.temperature == 0.2 and over.reasoning == "high"
    assert dict(check(OPENAI, over.params, provider="openai")) == {"seed": 7, "top_p": 0.5}  # the later wins
    assert with_set(flags, {}, None) == flags  # all unset: the flags again
    with pytest.raises(UsageError, match="temperature must be a number from 0 to 2"):
        with_set(flags, {"temperature": "3"}, None)
    assert set_label({"top_p": "0.5", "seed": "7"}, "high") == " · top_p=0.5 · seed=7 · reasoning high"


def test_repl_set_and_reasoning_reach_the_next_request(home, server):
    from test_repl import PROMPT, spawn

    child = spawn(home, server, "-m", "openai:echo", "-o", "seed=1")
    try:
        for line, shown in (("/set top_p 0.5", "set: top_p=0.5 —"), ("/set temperature 0.3", "temperature=0.3 —"),
                            ("/set seed 7", "seed=7 —"), ("/reasoning high", "reasoning: high")):
            child.sendline(line)
            child.expect_exact(shown)
            child.expect_exact(PROMPT)
        child.sendline("first")
        child.expect_exact("echo: first")
        child.expect_exact(PROMPT)
        body = server.requests[-1].body
        assert (body["top_p"], body["temperature"], body["seed"], body["reasoning_effort"]) == (0.5, 0.3, 7, "high")

        child.send("/set max_tok")  # Tab completes the names this model's provider takes
        child.send("\t")
        child.expect_exact("a whole number from 1 to 2147483647")  # the menu shows what each takes
        child.sendline(" 50")
        child.expect_exact("max_tokens=50 —")
        child.expect_exact(PROMPT)
        child.sendline("/set max_tokens")
        child.expect_exact(PROMPT)
        child.sendline("/set bogus 1")  # refused with the names; nothing else changes
        child.expect_exact("takes no option 'bogus'")
        child.expect_exact(PROMPT)
        child.sendline("/set top_p 2")
        child.expect_exact("top_p must be a number from 0 to 1")
        child.expect_exact(PROMPT)
        child.sendline("/set seed")  # unset: back to the -o flag's value
        child.expect_exact("set: top_p=0.5 temperature=0.3 —")
        child.expect_exact(PROMPT)
        child.sendline("/set temperature")
        child.expect_exact("set: top_p=0.5 —")
        child.expect_exact(PROMPT)
        child.sendline("second")
        child.expect_exact("echo: second")
        child.expect_exact(PROMPT)
        body = server.requests[-1].body
        assert body["top_p"] == 0.5 and body["seed"] == 1 and "temperature" not in body
        assert len(server.requests) == 2
    finally:
        child.sendline("/exit")
        child.expect(pexpect.EOF)


def test_thinking_tokens_are_priced_as_output(invoke, server, home):
    """Anthropic counts thinking in output_tokens (OpenAI reasoning in completion_tokens): the output rate."""
    env = base_env(home, server)
    with open(env["STREAMCHAT_CONFIG"], "a") as f:
        f.write('[prices."anthropic:thinker"]\ninput = 1.0\noutput = 2.0\n')
    server.script("thinker", chunks=["ok"], reasoning=["long thought"], usage=(7, 100))
    r = invoke("-m", "anthropic:thinker", "--reasoning", "low", "--json", "q", env=env)
    assert r.code == 0, r.stderr
    done = [json.loads(line) for line in r.out.splitlines()][-1]
    assert done["type"] == "done" and done["cost_usd"] == pytest.approx((7 * 1.0 + 100 * 2.0) / 1e6)


def test_anthropic_thinking_with_a_temperature_is_refused_before_sending(invoke, server):
    r = invoke("-m", "anthropic:echo", "--reasoning", "low", "--temperature", "0.5", "q")
    assert r.code == 2 and not server.requests and "temperature" in r.stderr


def test_options_reach_the_embedded_model(run, home):
    pytest.importorskip("llama_cpp", reason="the `local` extra is installed by .ci/run")
    env = base_env(home)
    r = run("-m", "local", "-o", 'stop=[" "]', "-o", "top_k=1", "--max-tokens", "24", "Write a sentence about cats.",
            env=env)
    assert r.code == 0, r.stderr
    assert " " not in r.out.strip() and "cut off" not in r.stderr  # it stopped at the first space
    r = run("-m", "local", "-o", "logit_bias={}", "q", env=env)  # llama.cpp's table has no logit_bias
    assert r.code == 2 and "mirostat_mode" in r.stderr


def test_save_role_keeps_the_options_typed_and_the_reasoning(invoke, server, home):
    r = invoke("--save-role", "tuned", "-m", "openai:echo", "-o", "top_p=0.5", "-o", 'stop=["a", "b"]',
            "-o", 'logit_bias={"50256": -5}', "-o", "store=true", "--reasoning", "low")
    assert r.code == 0, r.stderr
    r = invoke("-r", "tuned", "q")
    assert r.code == 0, r.stderr
    body = _sent(server)
    assert (body["top_p"], body["stop"], body["logit_bias"], body["store"], body["reasoning_effort"]) == \
        (0.5, ["a", "b"], {"50256": -5}, True, "low")
    r = invoke("--save-role", "wrong", "-m", "anthropic:echo", "-o", "seed=1")  # checked as the model's provider takes them
    assert r.code == 2 and "seed" in r.stderr


def test_anthropic_thinking_with_a_forced_tool_is_refused_before_sending(invoke, server):
    """The API refuses a forced tool with extended thinking (a --schema this model answers through a tool)."""
    r = invoke("-m", "anthropic:echo", "--reasoning", "low", "--schema", "name, age int", "q")
    assert r.code == 2 and not server.requests and "--reasoning" in r.stderr and "--schema" in r.stderr


def test_anthropic_thinking_with_tools_is_refused_before_sending(invoke, server, home, tmp_path):
    """Its next step would have to send the thinking blocks back signed, which the conversation does not keep."""
    import sys
    from pathlib import Path

    env = base_env(home, server)
    mcp = Path(__file__).parent / "mcp_files_server.py"
    with open(env["STREAMCHAT_CONFIG"], "a") as f:
        f.write(f'[mcp.files]\ncommand = "{sys.executable}"\nargs = ["{mcp}", "{tmp_path}"]\n')
    r = invoke("-m", "anthropic:echo", "--reasoning", "low", "--tools", "files", "--approve", "all", "q", env=env)
    assert r.code == 2 and not server.requests and "tools" in r.stderr
