"""Config values that were accepted silently at load (QA-15's leftovers): a `context` window that is
not a positive whole number, a `max_tokens` no server takes (an int past 64 bits could not even be
encoded), a `[roles.x]` key of the wrong type (checked only when the role was used). Each is now
exit 3 with one line at load, before anything is sent, whatever the command (those cases sit
with the other wrong-type cases in test_qa_config_types.py)."""

from __future__ import annotations

import pytest
from conftest import base_env

from streamchat.exit_status import ExitStatus


@pytest.mark.parametrize("toml", [
    '[providers.openai]\ncontext = 8000\n',
    '[providers.openai]\ncontext = { "echo" = 8000, "other" = 128000 }\n',
    "max_tokens = 2147483647\n",
    '[roles.x]\nsystem = "be brief"\nmax_tokens = 100\n',
])
def test_good_values_still_load(invoke, server, home, toml):
    config = home / "typed.toml"
    config.write_text(toml)
    config.chmod(0o600)
    r = invoke("--config", str(config), "-m", "openai:echo", "q", env=base_env(home, server))
    assert r.code == 0, r.stderr


def test_the_flag_takes_the_same_range(invoke, server):
    r = invoke("-m", "openai:echo", "--max-tokens", "99999999999999999999", "q")
    assert r.code == ExitStatus.USAGE and "must be at most 2147483647" in r.stderr, r.stderr
    assert not server.requests
