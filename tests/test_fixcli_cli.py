"""QA fixes of the command line (session 39): a damaged log under -c/--cid/-S, closed stdout or
stderr, an unquoted prompt that starts with a subcommand's name, non-finite numbers in -o JSON."""

from __future__ import annotations

import pytest

from streamchat.exit_status import ExitStatus


@pytest.mark.parametrize("args", [["-c"], ["--cid", "5"], ["-S", "work"]])
def test_continuing_on_a_log_that_is_no_database_is_exit_11_with_the_recovery_line(invoke, home, args):
    """QA-12: `-c` (and --cid, -S) on a log that is not a database warned "this answer will not be
    saved" and then failed "the conversation log is not available — check STREAMCHAT_DB", exit 2."""
    (home / "log.db").write_bytes(b"garbage not sqlite" * 500)
    r = invoke(*args, "-m", "openai:echo", "q")
    assert r.code == ExitStatus.LOG_DAMAGED == 11 and r.out == "", r.stderr
    assert r.stderr.startswith(f"error: the conversation log {home / 'log.db'} is damaged"), r.stderr
    assert f"sqlite3 {home / 'log.db'} .recover" in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr


def test_a_new_question_on_a_damaged_log_is_still_answered(invoke, home):
    (home / "log.db").write_bytes(b"garbage not sqlite" * 500)
    r = invoke("-m", "openai:echo", "q")
    assert r.code == 0 and r.out == "echo: q\n" and "will not be saved" in r.stderr, r.stderr


def _sh(command: str, home, server) -> tuple[int, str]:
    """`command` through sh (which can close a descriptor: `>&-`), with the installed streamchat."""
    import subprocess

    from conftest import STREAMCHAT, base_env

    proc = subprocess.run(["sh", "-c", command.replace("streamchat", STREAMCHAT)], env=base_env(home, server),
                          capture_output=True, timeout=60, cwd=home)
    return proc.returncode, proc.stderr.decode()


def test_a_closed_stdout_ends_as_output_closed_not_internal_error(home, server):
    """QA-13: with fd 1 closed Python's sys.stdout is None: the answer's first write was "internal
    error: AttributeError: 'NoneType' object has no attribute 'write'", exit 1."""
    code, _ = _sh("streamchat -m openai:echo q >&- 2>err.txt", home, server)
    err = (home / "err.txt").read_text()
    assert code == ExitStatus.OUTPUT_CLOSED and "internal error" not in err, err
    code, _ = _sh("streamchat history >&- 2>err.txt", home, server)
    assert code == ExitStatus.OUTPUT_CLOSED, (home / "err.txt").read_text()
    code, _ = _sh("streamchat history rename 1 first >&- 2>err.txt", home, server)  # writes nothing on stdout
    assert code == 0, (home / "err.txt").read_text()
    assert _sh("streamchat -c -m openai:echo again >&-", home, server)[0] == ExitStatus.OUTPUT_CLOSED
    # the log, opened while fd 1 was closed, did not take fd 1 (an answer written into it would damage it)
    assert _sh("streamchat history show 1 > shown.txt", home, server)[0] == 0
    assert "## User\n\nagain" in (home / "shown.txt").read_text()


def test_a_closed_stderr_keeps_the_turns_own_exit_code(home, server):
    """QA-13: with fd 2 closed, the error line itself failed: exit 1 instead of the auth error's 3 or
    the dropped connection's 6."""
    server.script("e401", status=401, error_message="bad key")
    server.script("drop", fault="drop", fault_after=1)
    assert _sh("streamchat -m openai:e401 q 2>&- >out.txt", home, server)[0] == ExitStatus.CONFIG
    assert _sh("streamchat -m openai:drop q 2>&- >/dev/null", home, server)[0] == ExitStatus.NETWORK
    assert _sh("streamchat -m openai:echo q 2>&- >out.txt", home, server)[0] == 0
    assert (home / "out.txt").read_text() == "echo: q\n"
    assert _sh("streamchat history 2>&- >&-", home, server)[0] == ExitStatus.OUTPUT_CLOSED


@pytest.mark.parametrize("words", [["history", "of", "rome"], ["models", "that", "are", "good", "for", "code"],
                                   ["roles", "of", "a", "ceo"], ["access", "control", "lists", "explained"]])
def test_an_unquoted_prompt_starting_with_a_command_says_to_quote_it(invoke, words):
    """QA-14: `streamchat history of rome` was Click's bare "No such command 'of'." — nothing said the
    words were taken as a command, and README's advice ("add words") is what failed."""
    r = invoke(*words)
    assert r.code == ExitStatus.USAGE and r.out == "", r.stderr
    said = " ".join(words)
    assert "is a command" in r.stderr and f"streamchat '{said}'" in r.stderr and f"streamchat -- {said}" in r.stderr, r.stderr


def test_a_command_word_after_chat_options_says_to_quote_it_too(invoke):
    r = invoke("--stats", "pick", "a", "number")
    assert r.code == ExitStatus.USAGE and "quote" in r.stderr and "add words" not in r.stderr, r.stderr


def test_a_real_mistake_in_a_command_gets_no_prompt_hint(invoke):
    r = invoke("history", "shwo", "1")
    assert r.code == ExitStatus.USAGE and "No such command 'shwo'" in r.stderr and "quote" not in r.stderr, r.stderr


@pytest.mark.parametrize("value", ['logit_bias={"50256": 1e999}', 'metadata={"a": NaN}', 'metadata={"a": [-Infinity]}'])
def test_a_json_option_with_a_non_finite_number_is_refused_before_anything_is_sent(invoke, server, home, value):
    """QA-11: NaN/Infinity (and 1e999, read as infinity) in an -o JSON value passed the option check,
    then failed as "unexpected error from openai: ValueError: Out of range float values", exit 1;
    --save-role wrote it as a role TOML could no longer read."""
    name = value.split("=")[0]
    r = invoke("-m", "openai:echo", "-o", value, "q")
    assert r.code == ExitStatus.USAGE and f"option {name} must be a JSON object" in r.stderr, r.stderr
    assert "finite" in r.stderr and len(r.stderr.splitlines()) == 1 and server.requests == [], r.stderr
    saved = invoke("-m", "openai:echo", "-o", value, "--save-role", "nanrole")
    assert saved.code == ExitStatus.USAGE, saved.stderr
    assert not (home / "config" / "streamchat" / "roles" / "nanrole.toml").exists()


def test_typed_non_finite_numbers_in_an_object_option_are_refused_too():
    from streamchat.errors import UsageError
    from streamchat.providers.options import check, options_for

    with pytest.raises(UsageError, match="finite"):
        check(options_for("openai"), [("metadata", {"a": {"b": float("nan")}})], provider="openai")
    assert check(options_for("openai"), [("metadata", {"a": 1.5})], provider="openai") == (("metadata", {"a": 1.5}),)


def test_both_prompt_suggestions_are_commands_the_shell_can_run(invoke):
    """Review 13: the second suggestion was `streamchat -- {words}` unquoted: for an apostrophe
    (`rome's`) it printed a command the shell cannot run (unbalanced quote)."""
    import re
    import shlex

    words = ["history", "of", "rome's", "fall"]
    r = invoke(*words)
    assert r.code == ExitStatus.USAGE, r.stderr
    first, second = re.search(r"quote the prompt: (.*) \(or: (.*)\)$", r.stderr.strip()).groups()
    assert shlex.split(first) == ["streamchat", " ".join(words)], r.stderr
    assert shlex.split(second) == ["streamchat", "--", *words], r.stderr
