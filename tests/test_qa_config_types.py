"""A config value of the wrong type is exit 3 naming the table and key, never "internal error"."""

from __future__ import annotations

import pytest
from conftest import base_env

from streamchat.exit_status import ExitStatus


@pytest.mark.parametrize(("toml", "says"), [
    ('[providers.openai]\nbase_url = 5\n', "[providers.openai] base_url must be a string, not int"),
    ('[providers.openai]\napi_key_cmd = 5\n', "[providers.openai] api_key_cmd must be a command"),
    ('[providers.openai]\nmodels = "fast"\n', "[providers.openai] models must be a list of model names, not str"),
    ('[providers.openai]\nmodels = [1, 2]\n', "models must be a list of model names, not a list holding int"),
    ('[providers.openai]\napi_key = ["sk-SECRET-in-a-list"]\n', "api_key must be a string, not a list holding str"),
    ("providers = 5\n", "'providers' must be a table ([providers] …), not int"),
    ("aliases = 5\n", "'aliases' must be a table ([aliases] …), not int"),
    ("prices = 5\n", "'prices' must be a table"),
    # QA-15's leftovers (clifix): accepted silently at load before, or checked only when used
    ('[providers.openai]\ncontext = "big"\n', "[providers.openai] context must be a whole number of tokens"),
    ('[providers.openai]\ncontext = { "fast" = -1 }\n', "[providers.openai] context must be a whole number of tokens"),
    ('[providers.openai]\ncontext = 0\n', "[providers.openai] context must be"),
    ('[providers.openai]\ncontext = true\n', "[providers.openai] context must be"),
    ("max_tokens = 99999999999999999999\n", "'max_tokens' must be at most 2147483647"),
    ("max_tokens = 0\n", "'max_tokens' must be at least 1"),
    ('[roles.x]\nsystem = 5\n', "role 'x': 'system' must be a string"),
    ('[roles.x]\nmax_tokens = 99999999999999999999\n', "role 'x': 'max_tokens' must be at most 2147483647"),
    ('[roles.x]\nmax_tokens = 0\n', "role 'x': 'max_tokens' must be at least 1"),
])
def test_a_value_of_the_wrong_type_is_exit_3_naming_it(invoke, server, home, toml, says):
    config = home / "typed.toml"
    config.write_text(toml)
    config.chmod(0o600)
    r = invoke("--config", str(config), "-m", "openai:echo", "q", env=base_env(home, server))
    assert r.code == ExitStatus.CONFIG, r.stderr
    assert says in r.stderr and "internal error" not in r.stderr and "SECRET" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not server.requests
