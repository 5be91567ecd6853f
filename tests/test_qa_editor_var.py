"""EDITOR, `-f !command` and api_key_cmd that cannot be split into a command: one line naming it, not "internal error"."""

from __future__ import annotations

from conftest import base_env

from streamchat.exit_status import ExitStatus


def test_an_editor_with_an_unclosed_quote_is_exit_2_naming_it(invoke, server, home):
    r = invoke("-m", "openai:echo", "--editor", env=base_env(home, server, EDITOR="'code --wait", VISUAL=""))
    assert r.code == ExitStatus.USAGE, r.stderr
    assert r.stderr.startswith("error: EDITOR cannot be read as a command") and "internal error" not in r.stderr
    assert not server.requests


def test_a_command_source_with_an_unclosed_quote_is_exit_2(invoke, server):
    r = invoke("-m", "openai:echo", "-f", "!echo 'unclosed", "q")
    assert r.code == ExitStatus.USAGE, r.stderr
    assert "No closing quotation" in r.stderr and "internal error" not in r.stderr and not server.requests


def test_an_api_key_cmd_with_an_unclosed_quote_is_a_config_error(invoke, server, home):
    env = base_env(home, server)
    config = home / "quoted.toml"
    config.write_text(f'[providers.work]\ntype = "openai"\nbase_url = "{server.url}/v1"\napi_key_cmd = "pass show \'work"\n')
    config.chmod(0o600)
    r = invoke("--config", str(config), "-m", "work:echo", "q", env=env)
    assert r.code == ExitStatus.CONFIG, r.stderr
    assert "api_key_cmd for provider 'work' cannot be read as a command" in r.stderr and not server.requests
