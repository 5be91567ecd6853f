"""`--functions ~nouser/f.py`: a file not found (exit PLUGIN, one line), not "internal error" (QA-6).

pathlib's `expanduser()` raises RuntimeError for a user that does not exist; the other call sites
moved to `streamchat.paths.user_path`, function_tools.py was left behind."""

from __future__ import annotations

from streamchat.exit_status import ExitStatus

NOBODY = "~streamchat-no-such-user"


def test_functions_under_an_unknown_users_home_is_not_found(invoke, server):
    r = invoke("-m", "openai:tooly", "--functions", f"{NOBODY}/f.py", "q")
    assert r.code == ExitStatus.PLUGIN, r.stderr
    assert "internal error" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert f"--functions {NOBODY}/f.py: no such Python file" in r.stderr
    assert not server.requests
