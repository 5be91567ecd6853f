"""A file streamchat cannot write, or a limit SQLite cannot hold: one line, not "internal error"."""

from __future__ import annotations

import pytest
from conftest import base_env

from streamchat.exit_status import ExitStatus

NOWHERE = "/proc/streamchat-no-such-dir"  # not creatable, even by root


def test_config_init_where_no_directory_can_be_made_is_one_line(invoke, server, home):
    r = invoke("config", "init", "--config", f"{NOWHERE}/config.toml")
    assert r.code == ExitStatus.CONFIG, r.stderr
    assert r.stderr.startswith(f"error: cannot write {NOWHERE}/config.toml: ") and len(r.stderr.splitlines()) == 1


def test_save_role_into_an_unwritable_config_dir_is_one_line(invoke, server, home):
    r = invoke("-m", "openai:echo", "--save-role", "terse", "-s", "be brief",
               env=base_env(home, server, XDG_CONFIG_HOME=NOWHERE))
    assert r.code == ExitStatus.CONFIG, r.stderr
    assert "cannot write" in r.stderr and "internal error" not in r.stderr


@pytest.mark.parametrize("command", [("history", "-n"), ("history", "search", "tok", "-n")])
def test_a_limit_beyond_sqlites_integers_lists_everything(invoke, server, command):
    server.script("fast", chunks=["tok"])
    assert invoke("-m", "openai:fast", "q").code == 0
    r = invoke(*command, "999999999999999999999")
    assert r.code == ExitStatus.OK, r.stderr
    assert r.out.count("\n") == 1
