"""Cost from the price database, keys in a real (file-backed) keyring, and shell completion (issue 19)."""

from __future__ import annotations

import json
import stat
import subprocess

import pytest
from conftest import STREAMCHAT, base_env
from fakeserver import Script
from import_probe import imported_by

# -- cost -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider,model,cost", [("openai", "gpt-4o-mini", 0.00045),
                                                 ("anthropic", "claude-sonnet-4-5", 0.0105)])
def test_cost_of_known_models_in_json_stats_and_history(invoke, server, provider, model, cost):
    server.script(model, Script(chunks=["a", "b"], usage=(1000, 500)))
    r = invoke("-m", f"{provider}:{model}", "--json", "q")
    done = json.loads(r.out.splitlines()[-1])
    assert done["type"] == "done" and done["cost_usd"] == pytest.approx(cost)
    assert done["stats"]["cost_usd"] == pytest.approx(cost)
    stats = invoke("-m", f"{provider}:{model}", "--stats", "q")
    assert f"cost ${cost:.4f}" in stats.stderr
    assert invoke("history").out.splitlines()[0].split("\t")[-1] == f"${cost:.4f}"


def test_unknown_price_is_a_dash_and_config_prices_apply(invoke, server, home):
    r = invoke("-m", "openai:echo", "--stats", "q")
    assert "cost —" in r.stderr
    cfg = home / "p.toml"
    cfg.write_text('[prices."openai:echo"]\ninput = 1.0\noutput = 2.0\n')
    server.script("echo2", Script(chunks=["x"], usage=(100, 50)))
    cfg.write_text('[prices."openai:echo2"]\ninput = 1.0\noutput = 2.0\n')
    done = json.loads(invoke("--config", str(cfg), "-m", "openai:echo2", "--json", "q").out.splitlines()[-1])
    assert done["cost_usd"] == pytest.approx((100 * 1.0 + 50 * 2.0) / 1e6)


def test_a_models_price_is_read_from_the_cache_after_its_first_turn(server, home):
    """Importing the price database took ~0.2 s after each one-shot's last token (#34): the rates
    of a model are kept in the cache directory, so later runs price a turn without importing it,
    to the same figure. A cache written for another database is not read."""
    server.script("gpt-4o-mini", Script(chunks=["a", "b"], usage=(1000, 500)))
    env = base_env(home, server, XDG_CACHE_HOME=str(home / ".cache"))  # this test's own, whatever the caller's is

    def cost_of_a_turn() -> tuple[float, set[str]]:
        imported, done = imported_by(["-m", "openai:gpt-4o-mini", "--json", "q"], ("genai_prices",), env=env)
        return json.loads(done.stdout.splitlines()[-1])["cost_usd"], imported

    assert cost_of_a_turn() == (pytest.approx(0.00045), {"genai_prices"})
    assert cost_of_a_turn() == (pytest.approx(0.00045), set())
    cache = home / ".cache" / "streamchat" / "prices.json"
    data = json.loads(cache.read_text())
    data["database"] = "another"
    data["models"]["openai\tgpt-4o-mini"]["rates"] = ["1", "1", "1", "1", "1"]
    cache.write_text(json.dumps(data))
    assert cost_of_a_turn() == (pytest.approx(0.00045), {"genai_prices"})


def test_a_damaged_price_cache_is_not_read(server, home):
    """prices.json is the cache directory's, rebuilt at will: rates in it that are not numbers (a
    damaged or hand-edited file) leave the turn to the database, not a traceback after the answer."""
    server.script("gpt-4o-mini", Script(chunks=["a", "b"], usage=(1000, 500)))
    env = base_env(home, server, XDG_CACHE_HOME=str(home / ".cache"))
    args = ["-m", "openai:gpt-4o-mini", "--json", "q"]
    imported_by(args, ("genai_prices",), env=env)  # writes the cache
    cache = home / ".cache" / "streamchat" / "prices.json"
    for damage in (["x", "1", "1", "1", "1"], ["NaN", "1", "1", "1", "1"]):
        data = json.loads(cache.read_text())
        data["models"]["openai\tgpt-4o-mini"]["rates"] = damage
        cache.write_text(json.dumps(data))
        imported, done = imported_by(args, ("genai_prices",), env=env)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout.splitlines()[-1])["cost_usd"] == pytest.approx(0.00045)
        assert imported == {"genai_prices"}


def test_the_cached_rates_price_every_model_as_the_database_does():
    """Every model of the bundled database whose price is linear (most; not dated prices): its rates
    give the database's own total, to the last digit, below its first tier; above it, and for more
    cached than input tokens, the database is asked (None here)."""
    from genai_prices import Usage, calc_price
    from genai_prices.data import providers

    from streamchat import cost

    linear = 0
    for provider in providers:
        for model in provider.models:
            rates = cost._probe(provider.id, model.id)
            if rates is None or rates == cost._MISS or rates.rates is None:
                continue
            linear += 1
            for inputs, outputs, cached, written in ((0, 0, 0, 0), (1234, 567, 89, 10), (199_999, 4096, 150_000, 0),
                                                     (200_001, 1, 0, 200_000), (3_000_000, 70_000, 1_000_000, 999)):
                mine = rates.price(inputs, outputs, cached, written)
                if rates.linear_to is not None and inputs > rates.linear_to:
                    assert mine is None
                    continue
                usage = Usage(input_tokens=inputs, output_tokens=outputs, cache_read_tokens=cached,
                              cache_write_tokens=written)
                assert mine is not None and float(mine) == float(
                    calc_price(usage, model_ref=model.id, provider_id=provider.id).total_price), (provider.id, model.id)
            assert rates.price(10, 0, 11, 0) is None
    assert linear > 1000


# -- keys -----------------------------------------------------------------------------------------

KEY = "sk-from-the-keyring-123456"


def key_env(home, server, backend: str):
    env = base_env(home, server, PYTHON_KEYRING_BACKEND=backend)
    del env["OPENAI_API_KEY"], env["ANTHROPIC_API_KEY"]
    return env


def test_keys_in_a_file_backed_keyring_are_used_and_masked(run, server, home):
    env = key_env(home, server, "keyrings.alt.file.PlaintextKeyring")
    assert run("-m", "openai:echo", "q", env=env).code == 0  # a base URL without a key is allowed
    stored = run("keys", "set", "openai", stdin=(KEY + "\n").encode(), env=env)
    assert stored.code == 0 and "PlaintextKeyring" in stored.stderr and KEY not in stored.stderr
    assert run("-m", "openai:echo", "q", env=env).code == 0
    assert server.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    listed = run("keys", "list", env=env).out
    assert "openai\tkeyring\tsk-…3456" in listed and KEY not in listed
    debug = run("-m", "openai:echo", "--debug", "q", env=env)
    shown = run("config", "show", env=env).out
    assert KEY not in debug.stderr and KEY not in shown
    env_wins = dict(env, OPENAI_API_KEY="sk-env-key-000000000")
    assert "openai\tenv OPENAI_API_KEY" in run("keys", "list", env=env_wins).out  # command > env > keyring > config
    assert run("keys", "rm", "openai", env=env).code == 0
    assert run("keys", "rm", "openai", env=env).code == 2


def test_no_keyring_falls_back_to_a_0600_file(run, server, home):
    env = key_env(home, server, "keyring.backends.fail.Keyring")
    stored = run("keys", "set", "anthropic", stdin=b"sk-ant-file-key-99999\n", env=env)
    path = home / "config" / "streamchat" / "keys.json"
    assert stored.code == 0 and f"warning: no OS keyring here; keys are kept in {path}" in stored.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert run("-m", "anthropic:echo", "q", env=env).code == 0
    headers = {k.lower(): v for k, v in server.requests[-1].headers.items()}
    sent = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")
    assert sent == "sk-ant-file-key-99999"  # SDK releases differ in the header they use


def test_a_local_server_without_a_key_starts_without_the_keyring(run, server, home):
    """Loading the keyring and picking its backend took 0.2-1.8 s of each start (#34): a provider
    on this machine with no key set asks it only for a key `keys set` stored; nor does a provider
    whose key is in the environment."""
    env = key_env(home, server, "keyrings.alt.file.PlaintextKeyring")  # compat: 127.0.0.1, no key anywhere
    imported, done = imported_by(["-m", "compat:echo", "q"], ("keyring",), env=env)
    assert done.returncode == 0 and "echo: q" in done.stdout and imported == set()
    imported, done = imported_by(["-m", "openai:echo", "q"], ("keyring",), env=base_env(home, server))
    assert done.returncode == 0 and imported == set()
    assert run("keys", "set", "compat", stdin=b"sk-compat-local-777777\n", env=env).code == 0
    assert run("-m", "compat:echo", "q", env=env).code == 0
    assert server.requests[-1].headers["authorization"] == "Bearer sk-compat-local-777777"
    assert run("keys", "rm", "compat", env=env).code == 0
    imported, done = imported_by(["-m", "compat:echo", "q"], ("keyring",), env=env)
    assert done.returncode == 0 and imported == set()
    assert server.requests[-1].headers["authorization"] == "Bearer not-needed"


def test_a_remote_provider_still_finds_its_key_in_the_keyring(invoke, server, home):
    """Only a server on this machine skips the keyring: elsewhere a key stored before stored_keys
    was kept is found as before (nothing is sent: `keys list` reads where each key comes from)."""
    env = key_env(home, server, "keyrings.alt.file.PlaintextKeyring")
    cfg = home / "far.toml"
    cfg.write_text('[providers.far]\ntype = "openai"\nbase_url = "https://llm.example.invalid/v1"\n')
    env["STREAMCHAT_CONFIG"] = str(cfg)
    assert invoke("keys", "set", "far", stdin=b"sk-far-away-key-424242\n", env=env).code == 0
    (home / "config" / "streamchat" / "stored_keys").unlink(missing_ok=True)  # as a key stored by an older streamchat
    assert "far\tkeyring\tsk-…4242" in invoke("keys", "list", env=env).out


def test_keys_for_unknown_providers_are_refused(invoke, server):
    assert invoke("keys", "set", "local", stdin=b"x\n").code == 2


# -- completion -----------------------------------------------------------------------------------

def complete(home, server, words: str, shell: str = "zsh") -> str:
    env = base_env(home, server, _STREAMCHAT_COMPLETE=f"complete_{shell}")
    if shell == "zsh":
        env["_TYPER_COMPLETE_ARGS"] = words
    else:
        env["COMP_WORDS"] = words
        env["COMP_CWORD"] = str(len(words.split(" ")) - 1)
    return subprocess.run([STREAMCHAT], env=env, capture_output=True, text=True, timeout=30).stdout


@pytest.mark.e2e  # complete() runs the installed CLI, eight times
def test_completion_of_commands_models_roles_and_ids(invoke, server, home):
    assert "history" in complete(home, server, "streamchat hist", "bash")
    assert "show" in complete(home, server, "streamchat history s", "bash")
    models = complete(home, server, "streamchat -m comp")
    assert '"compat"' in models
    assert invoke("models", "compat").code == 0  # the fake server lists "echo"; completion remembers it
    assert ":echo" in complete(home, server, "streamchat -m compat:e")
    assert "shell" in complete(home, server, "streamchat -r sh")
    assert invoke("-m", "openai:echo", "remember me").code == 0
    ids = complete(home, server, "streamchat history show ")
    assert '"1":"remember me"' in ids
    assert "1" in complete(home, server, "streamchat --cid ")
    assert invoke("history", "rename", "1", "work").code == 0
    assert '"work":"remember me"' in complete(home, server, "streamchat --session w")
    script = invoke("completion", "bash").out
    assert "_STREAMCHAT_COMPLETE" in script and "complete" in script


# -- context meter -----------------------------------------------------------------------------------

def small_context(home, server):
    cfg = home / "small.toml"
    cfg.write_text(f'[providers.compat]\ntype = "openai"\nbase_url = "{server.url}/v1"\ncontext = 50\n')
    return base_env(home, server, STREAMCHAT_CONFIG=str(cfg))


def test_a_question_that_overflows_the_context_is_refused_before_sending(invoke, server, home):
    env = small_context(home, server)
    assert invoke("-m", "compat:echo", "short", env=env).code == 0
    r = invoke("-m", "compat:echo", "x" * 400, env=env)
    assert r.code == 4 and "would need about" in r.stderr and "takes 50" in r.stderr and "too long" in r.stderr
    assert len(server.requests) == 1


def test_the_repl_holds_an_overflowing_question_until_send(home, server):
    from test_repl import PROMPT, spawn

    env_cfg = small_context(home, server)["STREAMCHAT_CONFIG"]
    child = spawn(home, server, "-m", "compat:echo", env_extra={"STREAMCHAT_CONFIG": env_cfg})
    try:
        child.sendline("y" * 400)
        child.expect_exact("/send to send it anyway")
        child.expect_exact(PROMPT)
        assert not server.requests
        child.sendline("/send")
        child.expect_exact("echo:")
        assert len(server.requests) == 1
    finally:
        child.close(force=True)


def test_cached_input_is_priced_and_history_since_sums(invoke, server):
    server.script("gpt-4o-mini", Script(chunks=["a"], usage=(1000, 0)))
    done = json.loads(invoke("-m", "openai:gpt-4o-mini", "--json", "q").out.splitlines()[-1])
    assert done["cost_usd"] == pytest.approx(1000 * 0.15 / 1e6 + 1 * 0.6 / 1e6)
    summed = invoke("history", "--since", "1d")
    assert summed.code == 0 and "1 conversations since 1d: total $0.0002" in summed.stderr
    assert invoke("history", "--since", "soon").code == 2
