"""`~user/…` for a user that does not exist is a file not found, not a crash.

pathlib's `expanduser()` raises RuntimeError("Could not determine home directory") for an
unknown `~user`: `-f`, `-a`, `--schema`, `-m local:PATH` were "internal error", exit 1, and
`/save ~nouser/x` in the REPL ended the whole session.
"""

from __future__ import annotations

import pytest
from test_repl import ask
from test_repl import repl as repl  # the REPL fixture (it ends each REPL cleanly)

from streamchat.exit_status import ExitStatus

NOBODY = "~streamchat-no-such-user"


@pytest.mark.parametrize("args", [
    ("-f", f"{NOBODY}/notes.txt"),
    ("-f", f"{NOBODY}/*.py"),
    ("-a", f"{NOBODY}/shot.png"),
    ("--schema", f"{NOBODY}/order.json"),
])
def test_an_unknown_users_home_is_a_usage_error(invoke, server, args):
    r = invoke("-m", "openai:echo", *args, "q")
    assert r.code == ExitStatus.USAGE, r.stderr
    assert NOBODY in r.stderr and "internal error" not in r.stderr and len(r.stderr.splitlines()) == 1
    assert not server.requests


def test_a_local_model_under_an_unknown_users_home_is_not_found(invoke, server):
    r = invoke("-m", f"local:{NOBODY}/m.gguf", "q")
    assert r.code == ExitStatus.CONFIG and "model file not found" in r.stderr, r.stderr


def test_repl_save_to_an_unknown_users_home_says_so_and_the_session_goes_on(repl, server):
    child = repl("-m", "openai:echo")
    ask(child, "keep me")
    child.expect_exact("echo: keep me")
    ask(child, f"/save {NOBODY}/t.md")
    child.expect_exact("cannot write")
    ask(child, "still here?")
    child.expect_exact("echo: still here?")
