"""QA-11: a one-shot question too long for the model's window was refused with a hint naming REPL
commands ("start anew (/new), or drop turns (/undo)") in a shell. The hint fits the front end."""

from __future__ import annotations

from conftest import base_env


def small_context(home, server):
    cfg = home / "small.toml"
    cfg.write_text(f'[providers.compat]\ntype = "openai"\nbase_url = "{server.url}/v1"\ncontext = 50\n')
    return base_env(home, server, STREAMCHAT_CONFIG=str(cfg))


def test_a_one_shot_overflow_hint_names_no_repl_command(invoke, server, home):
    r = invoke("-m", "compat:echo", "x" * 400, env=small_context(home, server))
    assert r.code == 4 and "too long" in r.stderr, r.stderr
    assert "/new" not in r.stderr and "/undo" not in r.stderr
    assert "shorten the input or use a model with a larger context" in r.stderr
    assert not server.requests


def test_the_repl_overflow_hint_names_its_commands(home, server):
    from test_repl import PROMPT, spawn

    child = spawn(home, server, "-m", "compat:echo", env_extra={"STREAMCHAT_CONFIG": small_context(home, server)["STREAMCHAT_CONFIG"]})
    try:
        child.sendline("y" * 400)
        child.expect_exact("(/new)")
        child.expect_exact("/send to send it anyway")
        child.expect_exact(PROMPT)
        assert not server.requests
    finally:
        child.close(force=True)
