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
