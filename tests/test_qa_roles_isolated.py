"""One broken role file costs only that role: `-r shell` read every role file, so a typo in
roles/bad.toml made every `-r` (the built-ins too) exit 3."""

from __future__ import annotations

from conftest import base_env

from streamchat.exit_status import ExitStatus


def test_a_broken_role_file_breaks_only_its_own_role(invoke, server, home):
    env = base_env(home, server)
    roles = home / "config" / "streamchat" / "roles"
    roles.mkdir(parents=True, mode=0o700)
    (home / "config").chmod(0o700)
    (home / "config" / "streamchat").chmod(0o700)
    (roles / "bad.toml").write_text("system = 5\n")
    (roles / "terse.md").write_text("+++\ntemperature = 0.1\n+++\nAnswer in one line.\n")
    for path in roles.iterdir():
        path.chmod(0o600)
    assert invoke("-r", "shell", "-m", "openai:echo", "list files", env=env).code == ExitStatus.OK
    r = invoke("-r", "terse", "-m", "openai:echo", "q", env=env)
    assert r.code == ExitStatus.OK, r.stderr
    assert server.requests[-1].body["messages"][0] == {"role": "system", "content": "Answer in one line."}
    r = invoke("-r", "bad", "-m", "openai:echo", "q", env=env)
    assert r.code == ExitStatus.CONFIG and "bad.toml" in r.stderr
    r = invoke("-r", "nope", "-m", "openai:echo", "q", env=env)
    assert r.code == ExitStatus.USAGE and "bad, code, explain, shell, terse" in r.stderr


def test_a_role_name_is_never_a_path(invoke, server, home):
    (home / "x.toml").write_text('system = "from outside roles/"\n')
    r = invoke("-r", "../../x", "-m", "openai:echo", "q")
    assert r.code == ExitStatus.USAGE and "no role named" in r.stderr
