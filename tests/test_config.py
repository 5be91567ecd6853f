"""Configuration: precedence, aliases, errors with path and line, `config` commands, key handling.

Through the CLI in-process (`invoke`): nothing here needs a real process."""

from __future__ import annotations

import json
import os

import pytest
from conftest import base_env

from streamchat.config import Settings, parse_settings
from streamchat.errors import UsageError


def write(home, text: str):
    path = home / "c.toml"
    path.write_text(text)
    return path


def test_precedence_flag_over_env_over_config(invoke, server, home):
    cfg = write(home, f'default_model = "openai:from-config"\n[providers.compat]\ntype = "openai"\nbase_url = "{server.url}/v1"\n')
    for name in ("from-config", "from-env", "from-flag"):
        server.script(name, chunks=[name])
    env = base_env(home, server, STREAMCHAT_CONFIG=str(cfg))
    assert invoke("q", env=env).out == "from-config\n"
    env["STREAMCHAT_MODEL"] = "openai:from-env"
    assert invoke("q", env=env).out == "from-env\n"
    assert invoke("-m", "openai:from-flag", "q", env=env).out == "from-flag\n"


def test_config_flag_beats_env_config(invoke, server, home):
    other = home / "other.toml"
    other.write_text('default_model = "openai:other"\n')
    server.script("other", chunks=["other"])
    env = base_env(home, server)
    assert invoke("--config", str(other), "q", env=env).out == "other\n"


def test_alias_and_provider_defaults(invoke, server, home):
    cfg = write(home, f'[aliases]\nfast = "compat:m1"\n[providers.compat]\ntype = "openai"\nbase_url = "{server.url}/v1"\n'
                      'default_model = "m2"\n')
    server.script("m1", chunks=["one"])
    server.script("m2", chunks=["two"])
    env = base_env(home, server, STREAMCHAT_CONFIG=str(cfg))
    assert invoke("-m", "fast", "q", env=env).out == "one\n"
    assert invoke("-m", "compat", "q", env=env).out == "two\n"


def test_broken_toml_names_path_and_line(invoke, home):
    cfg = write(home, 'timeout = 5\n[providers.x\ntype = "openai"\n')
    r = invoke("q", env=base_env(home, STREAMCHAT_CONFIG=str(cfg)))
    assert r.code == 3
    assert str(cfg) in r.stderr and "line 2" in r.stderr and "Traceback" not in r.stderr


def test_unknown_key_and_bad_type(invoke, home):
    r = invoke("q", env=base_env(home, STREAMCHAT_CONFIG=str(write(home, "colour = 1\n"))))
    assert r.code == 3 and "unknown key 'colour'" in r.stderr
    r = invoke("q", env=base_env(home, STREAMCHAT_CONFIG=str(write(home, 'timeout = "soon"\n'))))
    assert r.code == 3 and "'timeout' has the wrong type" in r.stderr


def test_unknown_model_and_missing_key(invoke, home):
    r = invoke("-m", "nosuch:model", "q", env=base_env(home))
    assert r.code == 2 and "unknown model 'nosuch:model'" in r.stderr
    r = invoke("-m", "openai:gpt-4o-mini", "q", env=base_env(home))
    assert r.code == 3 and "OPENAI_API_KEY" in r.stderr


def test_model_split_and_resolution_unit(monkeypatch):
    monkeypatch.delenv("STREAMCHAT_MODEL", raising=False)
    s = parse_settings({"aliases": {"a": "b", "b": "openai:x"}, "providers": {"mine": {"type": "anthropic",
                                                                                        "models": ["m9"]}}})
    assert s.resolve("openai:ft:gpt-4o:org")[1] == "ft:gpt-4o:org"
    assert s.resolve("a")[0].name == "openai" and s.resolve("a")[1] == "x"
    assert s.resolve("m9")[0].name == "mine"
    assert Settings().resolve(None) == (Settings().providers["local"], "smollm2")
    with pytest.raises(UsageError):
        s.resolve("zzz")


def test_config_commands(invoke, home):
    env = base_env(home)
    target = home / "config" / "streamchat" / "config.toml"
    assert invoke("config", "path", env=env).out.strip() == str(target)
    r = invoke("config", "init", env=env)
    assert r.code == 0 and target.exists() and oct(target.stat().st_mode & 0o777) == "0o600"
    assert "[providers.ollama]" in target.read_text()
    r = invoke("config", "init", env=env)
    assert r.code == 2 and "already exists" in r.stderr
    shown = json.loads(invoke("config", "show", env=env).out)
    assert shown["providers"]["local"]["type"] == "local"
    bare = invoke("config", env=env)  # as `history`, `roles` and `keys` list: it shows (was "Missing command", exit 2)
    assert bare.code == 0 and json.loads(bare.out) == shown


def test_config_show_masks_keys_and_warns_on_loose_permissions(invoke, home):
    cfg = write(home, '[providers.openai]\napi_key = "sk-live-VERYSECRET999"\n')
    os.chmod(cfg, 0o644)
    env = base_env(home, STREAMCHAT_CONFIG=str(cfg))
    r = invoke("config", "show", env=env)
    assert "VERYSECRET999" not in r.out + r.stderr
    assert json.loads(r.out)["providers"]["openai"]["api_key"].startswith("***")
    assert r.stderr.count("chmod 600") == 1
    os.chmod(cfg, 0o600)
    assert "chmod" not in invoke("config", "show", env=env).stderr


def test_api_key_cmd_list_runs_without_shell(invoke, server, home):
    cfg = write(home, f'[providers.keyed]\ntype = "openai"\nbase_url = "{server.url}/v1"\n'
                      'api_key_cmd = ["printf", "%s", "sk-from-cmd-$HOME"]\n')
    r = invoke("-m", "keyed:echo", "q", env=base_env(home, server, STREAMCHAT_CONFIG=str(cfg)))
    assert r.code == 0, r.stderr
    assert server.requests[-1].headers["authorization"] == "Bearer sk-from-cmd-$HOME"  # no shell expansion


def test_key_never_stored_in_log(invoke, server, home):
    invoke("-m", "openai:echo", "q")
    assert b"SECRET123" not in (home / "log.db").read_bytes()
