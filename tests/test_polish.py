"""QB-7 polish: a race's failed, empty answer is no alternative to pick; REPL hints in the REPL's words;
usage messages that say what is wrong."""

from __future__ import annotations

import pytest
from repl_spawn import PROMPT, repl_children


@pytest.fixture
def repl(home, server):
    yield from repl_children(home, server)


def test_pick_refuses_a_race_answer_that_failed_with_no_text(invoke, server):
    """QB-7: `-m fast -m nosuch q` (one 404) then `pick 2` switched to the empty, failed answer,
    which `-c` then continued from. It is refused in one line (exit 2); `history show` still shows it failed."""
    server.script("fast", chunks=["fine answer"])
    server.script("nosuch", status=404, error_message="model not found")
    raced = invoke("-m", "openai:fast", "-m", "openai:nosuch", "--no-retry", "q")
    assert raced.code != 0 and "fine answer" in raced.out, raced.stderr
    picked = invoke("pick", "2")
    assert picked.code == 2, picked.stderr
    lines = picked.stderr.strip().splitlines()
    assert len(lines) == 1 and "answer 2 (openai:nosuch) failed with no text" in lines[0], picked.stderr
    assert "Traceback" not in picked.stderr
    assert invoke("pick", "1").code == 0
    shown = invoke("history", "show", "1")
    assert shown.code == 0 and "404" in shown.out + shown.stderr, shown.out
    server.script("echo2", chunks=["ok"])
    assert invoke("-c", "-m", "openai:echo2", "next").code == 0
    assert [m["content"] for m in server.requests[-1].body["messages"]] == ["q", "fine answer", "next"]


@pytest.mark.e2e
def test_repl_alt_and_pick_skip_a_race_answer_that_failed_with_no_text(repl, server):
    server.script("fast", chunks=["fine answer"])
    server.script("nosuch", status=404, error_message="model not found")
    child = repl("-m", "openai:nosuch", "-m", "openai:fast", "--no-retry")
    child.sendline("q")
    child.expect_exact("TTFT", timeout=60)
    child.expect_exact(PROMPT)
    child.sendline("/pick 1")
    child.expect_exact("failed with no text")
    child.expect_exact(PROMPT)
    child.sendline("/alt")
    child.expect_exact("no other answer to this question")
    child.expect_exact(PROMPT)
    child.sendline("/race off")
    child.expect_exact("race off")
    child.expect_exact(PROMPT)
    child.sendline("/model openai:echo")
    child.expect_exact(PROMPT)
    child.sendline("next")
    child.expect_exact("echo: next", timeout=60)
    child.expect_exact(PROMPT)
    assert [m["content"] for m in server.requests[-1].body["messages"]] == ["q", "fine answer", "next"]


@pytest.mark.e2e
def test_repl_hints_name_repl_commands_and_a_code_blocks_number(repl, server):
    """QB-7: the REPL said "takes no --temperature … or --reasoning off" and "see `streamchat history`"
    (a shell's flags and commands), and `/copy x` said "no code block x" rather than that N is a number."""
    from fakeserver import Script

    server.script("code", Script(chunks=["Run:\n\n```bash\necho hi\n```\n"]))
    child = repl("-m", "openai:code")
    child.sendline("show me")
    child.expect_exact("code blocks:")
    child.expect_exact(PROMPT)
    child.sendline("/copy x")
    child.expect_exact("'x' is not a number: /copy N")
    child.expect_exact(PROMPT)
    child.sendline("/save-code x out.sh")
    child.expect_exact("'x' is not a number: /save-code N FILE")
    child.expect_exact(PROMPT)
    child.sendline("/load 99999")
    child.expect_exact("no conversation with id 99999 — see /history")
    child.expect_exact(PROMPT)
    child.sendline("/model anthropic:echo")
    child.expect_exact(PROMPT)
    child.sendline("/set temperature 0.2")
    child.expect_exact(PROMPT)
    child.sendline("/reasoning high")
    child.expect_exact(PROMPT)
    child.sendline("hello")
    child.expect_exact("/set temperature and /set top_k unset them, or /reasoning off")
    child.expect_exact(PROMPT)
    shown = child.logfile_read.getvalue()
    assert "no code block x" not in shown and "streamchat history" not in shown and "--reasoning" not in shown


def test_the_command_line_keeps_its_flags_in_the_thinking_hint(invoke):
    r = invoke("-m", "anthropic:echo", "--temperature", "0.2", "--reasoning", "high", "q")
    assert r.code == 2 and "or --reasoning off" in r.stderr and "/reasoning" not in r.stderr, r.stderr
    assert "see `streamchat history`" in invoke("history", "show", "99999").stderr


def test_config_init_over_an_existing_file_is_a_usage_refusal(invoke, home):
    """QB-7: README's table: 2 is usage, 3 a bad config file. `config init` refusing to overwrite a
    file that exists was exit 3."""
    target = home / "mine.toml"
    target.write_text("# mine\n")
    r = invoke("config", "init", "--config", str(target))
    assert r.code == 2 and "already exists" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert target.read_text() == "# mine\n"


def _commands(group, path=()):
    for name, cmd in group.commands.items():
        yield (*path, name), cmd
        if hasattr(cmd, "commands"):  # a group (click, Typer's own base, is not a declared dependency)
            yield from _commands(cmd, (*path, name))


def test_every_command_lists_with_a_whole_short_help_and_env_shows_one_way(invoke):
    """QB-7: --help's command lists cut descriptions at Click's 45 characters ("List, show, export,
    rename, remove and search logged..."); serve and access showed `[env var: X]`, the rest `[env: X]`."""
    import typer

    from streamchat.cli import app

    root = typer.main.get_command(app)
    cut = [" ".join(path) for path, cmd in _commands(root) if cmd.get_short_help_str(45).endswith("...")]
    assert cut == []
    for args in (("--help",), ("history", "--help"), ("serve", "--help"), ("access", "create", "--help")):
        shown = invoke(*args)
        listed = shown.out.partition("Commands:")[2].partition("Examples:")[0]
        assert shown.code == 0 and "..." not in listed and "[env var:" not in shown.out, shown.out
    assert "[env: STREAMCHAT_TOKEN]" in " ".join(invoke("serve", "--help").out.split())


def test_history_rm_takes_names_and_its_help_says_so(invoke):
    """QB-7: `history rm ID...` said "Conversation ids" though a name removes one, as elsewhere."""
    invoke("-m", "openai:echo", "q")
    assert invoke("history", "rename", "1", "work").code == 0
    assert "ids or names" in " ".join(invoke("history", "rm", "--help").out.split())
    removed = invoke("history", "rm", "work")
    assert removed.code == 0 and "removed conversation work" in removed.stderr, removed.stderr
    assert invoke("history", "show", "1").code == 2
