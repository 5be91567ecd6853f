"""Roles, the editor, code blocks out, undo/fork/alternatives (issue 17), through the real CLI and REPL."""

from __future__ import annotations

import os
import stat

import pexpect
import pytest
from conftest import base_env
from fakeserver import Script
from test_repl import ask, exchange
from test_repl import repl as repl  # the REPL fixture

from streamchat.exit_status import ExitStatus
from streamchat.render.code_blocks import code_blocks

CODE_ANSWER = ["Here:\n\n```sh\nls -la\n```\n\nand\n\n", "```python\nprint(1)\n```\n"]


def script(path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def role_env(home, server, **extra):
    cfg = home / "roles.toml"
    cfg.write_text('system = "cfg sys"\ntemperature = 0.1\n'
                   '[roles.rev]\nsystem = "role sys"\ntemperature = 0.5\ntemplate = "Review for {{focus}}:\\n{{input}}"\n'
                   '[roles.shell]\nsystem = "my own shell role"\n'
                   f'[providers.compat]\ntype = "openai"\nbase_url = "{server.url}/v1"\n')
    folder = home / "config" / "streamchat" / "roles"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "brief.md").write_text('+++\nmodel = "anthropic:echo"\n+++\nBe brief.\n')
    return base_env(home, server, STREAMCHAT_CONFIG=str(cfg), **extra)


def test_roles_precedence_templates_and_sources(invoke, server, home):
    env = role_env(home, server)
    r = invoke("-m", "openai:echo", "-r", "rev", "-p", "focus=security", "the code", env=env)
    assert r.code == 0, r.stderr
    body = server.requests[-1].body
    assert body["messages"][0] == {"role": "system", "content": "role sys"} and body["temperature"] == 0.5
    assert body["messages"][-1]["content"] == "Review for security:\nthe code"
    assert invoke("-m", "openai:echo", "-r", "rev", "--temperature", "0.9", "-p", "focus=x", "q", env=env).code == 0
    assert server.requests[-1].body["temperature"] == 0.9  # the flag wins over the role
    before = len(server.requests)
    missing = invoke("-m", "openai:echo", "-r", "rev", "q", env=env)
    assert missing.code == 2 and "needs a value for {{focus}}" in missing.stderr and len(server.requests) == before
    assert invoke("-r", "brief", "q", env=env).code == 0
    assert server.requests[-1].path.endswith("/messages") and server.requests[-1].body["system"] == "Be brief."
    assert invoke("-m", "openai:echo", "-r", "shell", "q", env=env).code == 0
    assert server.requests[-1].body["messages"][0]["content"] == "my own shell role"  # config overrides a built-in
    listed = invoke("roles", env=env).out
    for name in ("brief", "code", "explain", "rev", "shell"):
        assert f"{name}\t" in listed
    assert invoke("roles", "show", "nope", env=env).code == 2


def test_save_role_then_use_it(invoke, server, home):
    env = role_env(home, server)
    saved = invoke("--save-role", "mine", "-s", "be terse", "-m", "openai:echo", "--temperature", "0.3", env=env)
    assert saved.code == 0 and "saved role 'mine'" in saved.stderr and not server.requests
    assert invoke("-r", "mine", "q", env=env).code == 0
    body = server.requests[-1].body
    assert body["messages"][0]["content"] == "be terse" and body["temperature"] == 0.3


def test_roles_edit_starts_from_the_role_and_writes_only_a_change(invoke, server, home, tmp_path):
    folder = home / "config" / "streamchat" / "roles"
    quit_unsaved = script(tmp_path / "quit", "exit 0\n")  # :q! — the file as it was given
    r = invoke("roles", "edit", "shell", env=base_env(home, server, EDITOR=quit_unsaved))
    assert r.code == 0 and "unchanged; nothing was saved" in r.stderr
    assert not (folder / "shell.md").exists()  # the skeleton used to replace the built-in here
    failed = script(tmp_path / "fail", "echo more >> \"$1\"; exit 1\n")
    r = invoke("roles", "edit", "shell", env=base_env(home, server, EDITOR=failed))
    assert r.code == 2 and "nothing was saved" in r.stderr and not (folder / "shell.md").exists()

    seen = tmp_path / "seen.md"
    append = script(tmp_path / "append", f"cp \"$1\" {seen}; echo 'Use fish syntax.' >> \"$1\"\n")
    r = invoke("roles", "edit", "shell", env=base_env(home, server, EDITOR=append))
    assert r.code == 0 and "saved to" in r.stderr
    assert "You turn requests into shell commands." in seen.read_text()  # the built-in's text, not a skeleton
    assert invoke("-m", "openai:echo", "-r", "shell", "q", env=base_env(home, server)).code == 0
    system = server.requests[-1].body["messages"][0]["content"]
    assert system.startswith("You turn requests into shell commands.") and system.endswith("Use fish syntax.")
    assert oct((folder / "shell.md").stat().st_mode & 0o777) == "0o600"

    r = invoke("roles", "rm", "shell", env=base_env(home, server))
    assert r.code == 0 and "the built-in role 'shell' applies again" in r.stderr and not (folder / "shell.md").exists()
    assert "source: built-in" in invoke("roles", "show", "shell", env=base_env(home, server)).out
    again = invoke("roles", "rm", "shell", env=base_env(home, server))
    assert again.code == 2 and "built-in role" in again.stderr
    assert invoke("roles", "rm", "nope", env=base_env(home, server)).code == 2
    outside = invoke("roles", "edit", "../escape", env=base_env(home, server, EDITOR=append))
    assert outside.code == 2 and "not a usable role name" in outside.stderr


def test_roles_edit_a_config_role_starts_from_its_table(invoke, server, home, tmp_path):
    env = role_env(home, server)
    seen = tmp_path / "seen.md"
    append = script(tmp_path / "append", f"cp \"$1\" {seen}; echo 'More.' >> \"$1\"\n")
    r = invoke("roles", "edit", "rev", env={**env, "EDITOR": append})
    assert r.code == 0, r.stderr
    text = seen.read_text()
    assert "temperature = 0.5" in text and 'template = "Review for {{focus}}:\\n{{input}}"' in text
    assert "role sys" in text
    shown = invoke("roles", "show", "rev", env=env).out
    assert "rev.md" in shown and "template: Review for {{focus}}:\n{{input}}" in shown and "role sys\nMore." in shown
    r = invoke("roles", "rm", "rev", env=env)
    assert r.code == 0 and "[roles.rev] in the config applies again" in r.stderr


def test_save_role_refuses_to_overwrite_or_shadow_and_keeps_what_was_given(invoke, server, home):
    env = role_env(home, server)
    folder = home / "config" / "streamchat" / "roles"
    assert invoke("--save-role", "mine", "-s", "first", env=env).code == 0
    again = invoke("--save-role", "mine", "-s", "second", env=env)
    assert again.code == 2 and "role 'mine' already exists" in again.stderr and "--force" in again.stderr
    assert 'system = "first"' in (folder / "mine.toml").read_text()
    forced = invoke("--save-role", "mine", "-s", "second", "--force", env=env)
    assert forced.code == 0 and 'system = "second"' in (folder / "mine.toml").read_text()
    assert invoke("--force", "q", env=env).code == 2  # --force alone does nothing: said, not ignored

    for name in ("shell", "code"):  # a file would hide the built-in
        builtin = invoke("--save-role", name, "-s", "x", "--force", env=env)
        assert builtin.code == 2 and "is a built-in role" in builtin.stderr and not (folder / f"{name}.toml").exists()
    config_role = invoke("--save-role", "rev", "-s", "x", env=env)  # [roles.rev] in the config
    assert config_role.code == 2 and "[roles.rev]" in config_role.stderr
    brief = invoke("--save-role", "brief", "-s", "x", "--force", env=env)  # replaces brief.md: one definition left
    assert brief.code == 0 and not (folder / "brief.md").exists() and (folder / "brief.toml").exists()

    empty = invoke("--save-role", "nothing", env=env)
    assert empty.code == 2 and "nothing to save" in empty.stderr and not (folder / "nothing.toml").exists()

    saved = invoke("-r", "rev", "-p", "focus=security", "--save-role", "secreview", env=env)  # was an empty file
    assert saved.code == 0, saved.stderr
    assert invoke("roles", "show", "secreview", env=env).out.splitlines()[1:] == [
        "temperature: 0.5", "template: Review for security:", "{{input}}", "system: role sys"]
    assert invoke("-m", "openai:echo", "-r", "secreview", "the code", env=env).code == 0
    body = server.requests[-1].body
    assert body["messages"] == [{"role": "system", "content": "role sys"},
                                {"role": "user", "content": "Review for security:\nthe code"}]
    assert body["temperature"] == 0.5
    template = invoke("-r", "rev", "-s", "mine", "--save-role", "revtpl", env=env)  # no -p: the placeholder stays
    assert template.code == 0 and 'template = "Review for {{focus}}:\\n{{input}}"' in (folder / "revtpl.toml").read_text()
    assert 'system = "mine"' in (folder / "revtpl.toml").read_text()


def test_editor_one_shot(invoke, server, home, tmp_path):
    editor = script(tmp_path / "ed", "sed -i 's/^/edited: /' \"$1\"\n")
    r = invoke("-m", "openai:echo", "--editor", "original", env=base_env(home, server, EDITOR=editor))
    assert r.code == 0 and server.last_messages()[-1]["content"] == "edited: original"
    empty = script(tmp_path / "empty", ': > "$1"\n')
    r = invoke("-m", "openai:echo", "--editor", "original", env=base_env(home, server, EDITOR=empty))
    assert r.code == 2 and "nothing was sent" in r.stderr and len(server.requests) == 1


def test_editor_without_a_terminal_and_without_editor_set_is_refused(server, home, tmp_path):
    """With no VISUAL/EDITOR the fallback is vi, a terminal editor. Run from a script or cron (no
    terminal at all) it waited for keys forever; now one line says the editor needs a terminal. The
    fake vi here waits as the real one did."""
    import subprocess

    from conftest import STREAMCHAT

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script(bin_dir / "vi", "sleep 60\n")
    env = {k: v for k, v in base_env(home, server).items() if k not in ("VISUAL", "EDITOR")}
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    proc = subprocess.run([STREAMCHAT, "-m", "openai:echo", "--editor", "draft"], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, start_new_session=True, timeout=30)  # no controlling terminal
    assert proc.returncode == 2 and "the editor (vi) needs a terminal" in proc.stderr and "VISUAL" in proc.stderr
    assert not server.requests


def test_editor_runs_on_the_terminal_when_stdin_is_piped(server, home, tmp_path):
    """`cmd | streamchat --editor`: the editor got the drained pipe as its stdin (a terminal editor
    then reads EOF instead of keys); it now runs on the terminal (/dev/tty). The fake editor writes
    whether its stdin is a terminal."""
    from conftest import STREAMCHAT

    editor = script(tmp_path / "ed", 'if [ -t 0 ]; then printf "on a terminal" > "$1"; else printf "no terminal" > "$1"; fi\n')
    env = base_env(home, server, EDITOR=editor)
    child = pexpect.spawn("/bin/sh", ["-c", f"echo context | {STREAMCHAT} -m openai:echo --editor draft"], env=env,
                          encoding="utf-8", timeout=30)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert server.last_messages()[-1]["content"].startswith("on a terminal")


def test_edit_last_in_the_repl(repl, server, tmp_path):
    editor = script(tmp_path / "ed", "printf 'better question' > \"$1\"\n")
    child = repl("-m", "openai:echo", env_extra={"EDITOR": editor})
    exchange(child, "first try", "echo: first try")
    ask(child, "/edit last")
    child.expect_exact("echo: better question")
    assert server.last_messages() == [{"role": "user", "content": "better question"}]


def test_extract_code_blocks(invoke, server):
    server.script("code", Script(chunks=CODE_ANSWER))
    first = invoke("-m", "openai:code", "-x", "q")
    assert first.code == 0 and first.stdout == b"ls -la\n"
    every = invoke("-m", "openai:code", "--extract-all", "q")
    assert every.code == 0 and every.stdout == b"ls -la\n\nprint(1)\n"
    server.script("prose", Script(chunks=["no code here"]))
    none = invoke("-m", "openai:prose", "-x", "q")
    assert none.code == 4 and none.stdout == b"" and "no fenced code block" in none.stderr
    for flags in (("--json", "-x"), ("--json", "--extract-all"), ("--shell", "--json"), ("--shell", "-x")):
        both = invoke("-m", "openai:code", *flags, "q")  # all but one were silently dropped
        assert both.code == 2 and both.stdout == b"" and "each decide what stdout holds" in both.stderr, flags


def test_extract_leaves_out_a_block_the_answer_ended_inside(invoke, server):
    """A cut-off (or a fence never closed) must not put half a command on stdout with exit 0."""
    server.script("cut", Script(chunks=["```sh\nrm -rf build/", "old-but-keep-this\n"], finish_reason="length"))
    cut = invoke("-m", "openai:cut", "-x", "q")
    assert cut.code == ExitStatus.CUT_OFF == 9 and cut.stdout == b"", cut.stderr
    assert cut.stderr.count("\n") == 1 and "cut off at the token limit" in cut.stderr and "nothing written" in cut.stderr
    server.script("open", Script(chunks=["Here:\n\n```sh\nls -la\n```\n\n```python\nprint(", "1)\n"]))
    unclosed = invoke("-m", "openai:open", "-x", "q")  # the first block is complete: written, exit 0
    assert unclosed.code == 0 and unclosed.stdout == b"ls -la\n"
    every = invoke("-m", "openai:open", "--extract-all", "q")
    assert every.code == ExitStatus.UNCLOSED_CODE == 10 and every.stdout == b"ls -la\n"
    assert every.stderr.count("\n") == 1 and "never closed — only the complete blocks were written" in every.stderr
    server.script("open1", Script(chunks=["```sh\nrm -rf build/old\n"]))
    alone = invoke("-m", "openai:open1", "-x", "q")
    assert alone.code == 10 and alone.stdout == b"" and "nothing written" in alone.stderr


@pytest.mark.parametrize("text, closed", [
    ("```sh\nrm -rf build/old", [False]),
    ("```sh\nls\n```", [True]),
    ("```sh\nls\n```   \n\nmore", [True]),
    ("```sh\nls\n``", [False]),  # cut inside the closing fence
    ("~~~~\na\n~~~\n", [False]),  # a shorter fence is content
    ("- item\n  ```sh\n  ls\n  ```\n- b", [True]),
    ("> ```\n> ls\n> ```\n", [True]),
    ("> ```\n> ls\n", [False]),
    ("```sh\nls\n```\r\n\r\n```\nhalf\n", [True, False]),
    ("```", [False]),
])
def test_a_code_block_knows_whether_it_closed(text, closed):
    assert [b.closed for b in code_blocks(text)] == closed


def test_copy_code_block_n_and_save_code(repl, server, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    clip = tmp_path / "clipboard.txt"
    script(bin_dir / "xclip", f"cat > {clip}\n")
    server.script("code", Script(chunks=CODE_ANSWER))
    child = repl("-m", "openai:code", env_extra={"PATH": f"{bin_dir}:{os.environ['PATH']}", "DISPLAY": ":99"})
    ask(child, "show me")
    child.expect_exact("code blocks: 1 sh (1 line) · 2 python (1 line)")
    ask(child, "/copy 2")
    child.expect_exact("copied code block 2 with xclip")
    assert clip.read_text() == "print(1)\n"
    target = tmp_path / "ls.sh"
    ask(child, f"/save-code 1 {target}")
    child.expect_exact("saved code block 1")
    assert target.read_text() == "ls -la\n"


def test_copy_falls_back_to_the_terminal_when_the_tool_fails(repl, server, tmp_path):
    """xclip with no X display exits 1 and copies nothing (it used to be reported as copied): the
    text then goes to the terminal's clipboard as OSC 52, which works over SSH and in tmux."""
    import base64

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script(bin_dir / "xclip", "cat > /dev/null\necho 'Error: Can\'t open display' >&2\nexit 1\n")
    server.script("code", Script(chunks=CODE_ANSWER))
    child = repl("-m", "openai:code", env_extra={"PATH": str(bin_dir), "DISPLAY": ":99"})
    ask(child, "show me")
    child.expect_exact("code blocks: 1 sh")
    ask(child, "/copy 1")
    child.expect_exact("\x1b]52;c;" + base64.b64encode(b"ls -la\n").decode() + "\x07")
    child.expect_exact("copied code block 1 through the terminal (OSC 52)")
    assert "open display" not in child.logfile_read.getvalue()  # the tool's own complaint stays hidden


def test_undo_then_continue(repl, server, invoke):
    child = repl("-m", "openai:echo")
    for text in ("keep", "drop"):
        exchange(child, text, f"echo: {text}")
    exchange(child, "/undo", "undone: drop")
    child.sendeof()
    child.expect(pexpect.EOF)
    assert invoke("-c", "next").code == 0
    assert [m["content"] for m in server.last_messages()] == ["keep", "echo: keep", "next"]
    assert invoke("history").out.split("\t")[3] == "2"


def test_retry_alternatives_and_fork(repl, server, invoke):
    child = repl("-m", "openai:echo")
    exchange(child, "/fork", "nothing to fork yet")  # it said "forked with 0 turns"
    exchange(child, "q1", "echo: q1")
    exchange(child, "/retry", "echo: q1")
    exchange(child, "/alt", "answer 1 of 2")
    exchange(child, "/fork", "forked from conversation 1 with 1 turn")
    exchange(child, "in the fork", "echo: in the fork")
    child.sendeof()
    child.expect(pexpect.EOF)
    assert len(invoke("history").out.splitlines()) == 2
    exported = invoke("history", "export", "2").out
    assert "Forked from conversation 1" in exported and "q1" in exported
    assert invoke("--cid", "2", "more").code == 0
    assert [m["content"] for m in server.last_messages()] == ["q1", "echo: q1", "in the fork", "echo: in the fork",
                                                              "more"]
    assert invoke("--cid", "1", "other").code == 0  # the original is untouched by the fork
    assert [m["content"] for m in server.last_messages()] == ["q1", "echo: q1", "other"]
