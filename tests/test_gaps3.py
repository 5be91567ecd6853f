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


def test_the_python_api_reports_a_broken_role_table_at_load_as_the_cli_does(invoke, server, home, monkeypatch):
    """The CLI refuses a config with a broken [roles.x] when it loads it (exit 3, whatever the command);
    the Python API loaded the same config and said nothing, so the error waited for a use that the API
    cannot make. get_model / get_async_model now raise the CLI's ConfigError, in its words."""
    import streamchat
    from streamchat.config import load_settings

    cfg = home / "roles.toml"
    cfg.write_text('[roles.hot]\ntemperature = "very"\n')
    cli = invoke("--config", str(cfg), "-m", "openai:echo", "q")
    assert cli.code == 3 and "role 'hot': 'temperature' must be from 0 to 2" in cli.stderr, cli.stderr
    monkeypatch.setenv("STREAMCHAT_CONFIG", str(cfg))
    for get in (streamchat.get_model, streamchat.get_async_model):
        with pytest.raises(streamchat.ConfigError) as refused:
            get("openai:echo")
        assert refused.value.said() in cli.stderr
        with pytest.raises(streamchat.ConfigError):  # settings the caller loaded are checked alike
            get("openai:echo", settings=load_settings(cfg))
    cfg.write_text('[roles.hot]\ntemperature = 0.9\n')
    assert streamchat.get_model("openai:echo").name == "openai:echo"
