"""`access create`'s inputs checked before a key exists: its expiry and its models."""

from __future__ import annotations

import pytest


def _state(home) -> list[str]:
    return ["--state", f"sqlite:{home / 'access.db'}"]


@pytest.mark.parametrize("age", ["0d", "0s", "0w", "-1d", "soon"])
def test_a_key_that_would_never_work_is_refused(invoke, home, age):
    refused = invoke("access", "create", "bob", "--expires", age, *_state(home))
    assert refused.code == 2 and refused.out == "", refused
    assert len(refused.stderr.strip().splitlines()) == 1 and "--expires" in refused.stderr, refused.stderr
    assert "no keys" in invoke("access", "list", *_state(home)).stderr  # nothing was made


def test_the_summary_says_when_a_key_expires(invoke, home):
    created = invoke("access", "create", "bob", "--expires", "30d", *_state(home))
    assert created.code == 0 and created.out.startswith("sk-sc-"), created
    assert "expires " in created.stderr, created.stderr
    forever = invoke("access", "create", "amy", *_state(home))
    assert forever.code == 0 and "expires" not in forever.stderr, forever.stderr


def test_a_model_no_provider_alias_or_route_here_knows_is_warned_about(invoke, home):
    """serve's own config (another machine on a shared --state, another --config) may know a provider
    this one does not, so an unknown name is a warning, not a refusal."""
    made = invoke("access", "create", "bob", "--models", "openai:gpt-4o-mini,nonexist:x,compat:m", *_state(home))
    assert made.code == 0 and made.out.startswith("sk-sc-"), made
    warned = [line for line in made.stderr.splitlines() if line.startswith("warning:")]
    assert len(warned) == 1 and "'nonexist:x'" in warned[0], made.stderr
    assert "openai:gpt-4o-mini" not in warned[0] and "compat:m" not in warned[0]
    known = invoke("access", "create", "amy", "--models", "openai:gpt-4o-mini,compat:m", *_state(home))
    assert known.code == 0 and "warning" not in known.stderr, known.stderr


def test_state_takes_a_file_path_as_well_as_sqlite_path(invoke, home, server):
    """`--state /path/keys.db` (and `~/…` from $STREAMCHAT_STATE, which no shell expands) is the SQLite
    file `sqlite:PATH` names; a bare word (`--state redis`, a URL half typed) is still refused."""
    from conftest import base_env

    path = home / "keys.db"
    assert invoke("access", "create", "bob", "--state", str(path)).code == 0
    assert invoke("access", "list", "--state", f"sqlite:{path}").out.startswith("bob\tactive")
    env = base_env(home, server, STREAMCHAT_STATE="~/other.db")
    assert invoke("access", "create", "amy", env=env).code == 0 and (home / "other.db").exists()
    assert invoke("access", "list", "--state", f"sqlite:{home / 'other.db'}").out.startswith("amy\tactive")
    typo = invoke("access", "list", "--state", "redis")
    assert typo.code == 2 and len(typo.stderr.strip().splitlines()) == 1 and "PATH" in typo.stderr, typo.stderr


@pytest.mark.parametrize("limit", [("--budget", "1e10"), ("--budget", "1e300"), ("--budget", "9000001"),
                                   ("--tpm", "99999999999999999999999"), ("--rpm", "99999999999999999999999"),
                                   ("--rpm", "1000000000001")])
def test_a_limit_past_what_the_store_holds_is_a_usage_error(invoke, home, limit):
    """QA-10: `--budget 1e10` ($1e10 is 1e19 nanodollars, past SQLite's 2^63) and a huge --rpm/--tpm
    were "internal error: OverflowError", exit 1. Now a usage error naming the option and its range."""
    refused = invoke("access", "create", "bob", *limit, *_state(home))
    assert refused.code == 2 and refused.out == "", refused
    assert limit[0] in refused.stderr and ("9,000,000" in refused.stderr or "at most 1000000000000" in refused.stderr)
    assert "internal" not in refused.stderr
    assert "no keys" in invoke("access", "list", *_state(home)).stderr  # nothing was made


def test_the_largest_limits_are_kept(invoke, home):
    made = invoke("access", "create", "bob", "--budget", "9000000", "--rpm", "1000000000000", "--tpm", "1000000000000",
                  *_state(home))
    assert made.code == 0, made
    assert invoke("access", "list", *_state(home)).out.startswith("bob\tactive\t$9000000/total")
