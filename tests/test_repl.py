"""The REPL through a real pseudo-terminal (pexpect) against the fake server."""

from __future__ import annotations

import contextlib
import io
import shutil
import signal
import time

import pexpect
import pytest
from conftest import STREAMCHAT, base_env
from fakeserver import Script

PROMPT = "›"


def spawn(home, server, *args: str, env_extra: dict[str, str] | None = None) -> pexpect.spawn:
    env = base_env(home, server, PROMPT_TOOLKIT_NO_CPR="1", **(env_extra or {}))
    child = pexpect.spawn(STREAMCHAT, list(args), env=env, encoding="utf-8", dimensions=(30, 100), timeout=15)
    child.logfile_read = io.StringIO()  # everything the terminal showed
    child.expect_exact(PROMPT)
    return child


def ask(child: pexpect.spawn, text: str) -> None:
    child.sendline(text)


def exchange(child: pexpect.spawn, text: str, shown: str) -> None:
    """Ask, see `shown`, and wait for the next prompt."""
    ask(child, text)
    child.expect_exact(shown)
    child.expect_exact(PROMPT)


PASTE_START, PASTE_END = "\x1b[200~", "\x1b[201~"


def paste(child: pexpect.spawn, text: str) -> None:
    """A bracketed paste of `text` (newlines as the terminal sends them), then Enter."""
    child.send(PASTE_START + text.replace("\n", "\r") + PASTE_END + "\r")


@pytest.fixture
def repl(home, server):
    children = []

    def _spawn(*args: str, **kw) -> pexpect.spawn:
        child = spawn(home, server, *args, **kw)
        children.append(child)
        return child

    yield _spawn
    for child in children:
        if child.isalive():  # SIGHUP now ends the REPL cleanly (saving the turn), which takes a moment
            child.kill(signal.SIGHUP)
            with contextlib.suppress(pexpect.ExceptionPexpect):
                child.expect(pexpect.EOF, timeout=10)
        child.close(force=True)


def test_question_streams_answer_and_context_carries(repl, server):
    child = repl("-m", "openai:echo")
    exchange(child, "first question", "echo: first question")
    exchange(child, "second one", "echo: second one")
    assert server.last_messages() == [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "echo: first question"},
        {"role": "user", "content": "second one"},
    ]
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_ctrl_c_mid_stream_keeps_partial_and_returns_prompt(repl, server, provider):
    server.script("slow", Script(chunks=[f"tok{i} " for i in range(200)], delay=0.05))
    child = repl("-m", f"{provider}:slow")
    ask(child, "go")
    child.expect_exact("tok3")
    sent = time.monotonic()
    child.sendintr()
    child.expect_exact("[interrupted]")
    child.expect_exact(PROMPT, timeout=1)
    assert time.monotonic() - sent < 1.0
    assert server.wait_disconnect(1), "the HTTP stream was not closed"
    assert server.completed == 0
    # the partial answer is the assistant turn in the next request
    server.script("next", Script(chunks=["ok"]))
    ask(child, "/model openai:next")
    child.expect_exact("model: openai:next")
    ask(child, "continue")
    child.expect_exact("ok")
    msgs = server.last_messages()
    assert msgs[0] == {"role": "user", "content": "go"}
    assert msgs[1]["role"] == "assistant" and msgs[1]["content"].startswith("tok0 tok1 tok2 tok3")
    assert len(msgs[1]["content"].split()) < 200
    assert msgs[2] == {"role": "user", "content": "continue"}


def test_ctrl_c_at_prompt_clears_line_and_ctrl_d_exits_zero(repl, server):
    child = repl("-m", "openai:echo")
    child.send("half typed")
    child.sendintr()
    child.expect_exact(PROMPT)
    exchange(child, "fresh", "echo: fresh")
    assert server.last_messages()[-1]["content"] == "fresh"
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_new_retry_and_exit(repl, server):
    child = repl("-m", "openai:echo")
    exchange(child, "one", "echo: one")
    exchange(child, "/retry", "echo: one")
    assert server.last_messages() == [{"role": "user", "content": "one"}]
    ask(child, "/new")
    child.expect_exact("new conversation")
    ask(child, "two")
    child.expect_exact("echo: two")
    assert server.last_messages() == [{"role": "user", "content": "two"}]
    child.expect_exact(PROMPT)
    exchange(child, "/bogus", "unknown command /bogus")
    ask(child, "/exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_error_mid_session_leaves_repl_usable(repl, server):
    server.script("bad", Script(status=500))
    child = repl("-m", "openai:bad", "--no-retry")
    exchange(child, "hello", "HTTP 500")
    ask(child, "/model openai:echo")
    child.expect_exact("model: openai:echo")
    ask(child, "again")
    child.expect_exact("echo: again")
    # the failed turn (no text) is not sent as context
    assert server.last_messages() == [{"role": "user", "content": "again"}]


def test_multiline_block_and_system_prompt(repl, server):
    child = repl("-m", "openai:echo", "-s", "sys prompt")
    ask(child, '"""')
    ask(child, "line a")
    exchange(child, 'line b"""', "echo: line a")
    msgs = server.last_messages()
    assert msgs[0] == {"role": "system", "content": "sys prompt"}
    assert msgs[-1] == {"role": "user", "content": "line a\nline b"}


def test_save_transcript(repl, server, tmp_path):
    child = repl("-m", "openai:echo")
    ask(child, "keep me")
    child.expect_exact("echo: keep me")
    out = tmp_path / "t.md"
    ask(child, f"/save {out}")
    child.expect_exact("saved")
    assert "keep me" in out.read_text() and "## Assistant" in out.read_text()


def test_history_and_load_resume_a_conversation(repl, server, invoke):
    assert invoke("-m", "openai:echo", "saved question").code == 0
    child = repl("-m", "openai:echo")
    exchange(child, "/history", "saved question")
    exchange(child, "/load 1", "loaded conversation 1 (1 turn)")
    ask(child, "next")
    child.expect_exact("echo: next")
    assert server.last_messages() == [
        {"role": "user", "content": "saved question"},
        {"role": "assistant", "content": "echo: saved question"},
        {"role": "user", "content": "next"},
    ]


def test_continue_flag_resumes_in_repl(repl, server, invoke):
    assert invoke("-m", "openai:echo", "earlier").code == 0
    child = repl("-c")
    ask(child, "later")
    child.expect_exact("echo: later")
    assert [m["content"] for m in server.last_messages()] == ["earlier", "echo: earlier", "later"]


def test_double_ctrl_c_leaves_no_traceback(repl, server):
    server.script("slow", Script(chunks=[f"tok{i} " for i in range(300)], delay=0.03))
    child = repl("-m", "openai:slow")
    ask(child, "go")
    child.expect_exact("tok2")
    child.sendintr()
    child.sendintr()
    child.expect_exact(PROMPT, timeout=2)
    ask(child, "/model openai:echo")
    child.expect_exact("model: openai:echo")
    exchange(child, "still alive", "echo: still alive")
    assert "Traceback" not in child.logfile_read.getvalue()
    child.sendeof()


def test_help_aligns_usages_within_80_columns_and_tab_shows_what_a_command_does(repl, server):
    import re

    child = repl("-m", "openai:echo")
    ask(child, "/help")
    child.expect_exact("// sends one that starts with /.")
    child.expect_exact(PROMPT)
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", child.logfile_read.getvalue())
    lines = [line.rstrip("\r") for line in shown.split("\n") if line.startswith("  /") or line.startswith("  A")]
    assert "  /save-code N FILE  save code block N of the last answer" in lines, lines
    assert "  /load ID|NAME      resume a saved conversation" in lines, lines
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    child.send("/sa\t")  # the completion menu shows each command's text beside it
    child.expect_exact("save the conversation as Markdown")


def screen_of(child: pexpect.spawn):
    """What the pseudo-terminal shows now (scrollback included), as a person would see it."""
    from terminal_emulator import Terminal

    term = Terminal(100, 30)
    term.stream.feed(child.logfile_read.getvalue())  # the pty already turned \n into \r\n
    return term.lines()


def test_keys_typed_while_an_answer_streams_wait_for_the_next_prompt(repl, server):
    """Typed-ahead keys are not echoed into the answer (they landed on its blank lines, where no
    repaint covered them); the next prompt starts with them, and Enter sends them (#28.10)."""
    server.script("slow", Script(chunks=["alpha\n\n", "beta\n\n", "```sh\nls -l\n", "```\n\n", "gamma\n"],
                                 delay=0.4))
    child = repl("-m", "openai:slow")
    ask(child, "go")
    child.expect_exact("alpha")
    child.send("zq" * 10)
    child.expect_exact("ls")
    child.send("xk" * 10)
    child.expect_exact("code blocks:")
    child.expect_exact(PROMPT)
    child.expect_exact("xk")  # the prompt shows what was typed
    lines = screen_of(child)
    prompt_row = max(i for i, line in enumerate(lines) if line.startswith(PROMPT))
    answer = "\n".join(lines[:prompt_row])
    assert "zq" not in answer and "xk" not in answer, answer
    assert answer.count("ls -l") == 1, answer
    assert lines[prompt_row] == f"{PROMPT} {'zq' * 10}{'xk' * 10}", lines[prompt_row]
    child.send(" more\r")
    child.expect_exact("code blocks:")
    assert server.last_messages()[-1]["content"] == f"{'zq' * 10}{'xk' * 10} more"


def test_a_multiline_block_is_one_history_entry(repl, server):
    """Up recalls the whole \"\"\" block, which sends the same message again (#28.12)."""
    child = repl("-m", "openai:echo")
    ask(child, '"""')
    ask(child, "line a")
    exchange(child, 'line b"""', "echo: line a")
    assert server.last_messages()[-1]["content"] == "line a\nline b"
    child.send("\x1b[A")  # Up
    child.expect_exact('line b"""')
    child.send("\r")
    child.expect_exact("echo: line a")
    child.expect_exact(PROMPT)
    msgs = server.last_messages()
    assert msgs[-1] == {"role": "user", "content": "line a\nline b"}
    assert [m["content"] for m in msgs].count("line a\nline b") == 2


@pytest.mark.parametrize(("text", "raw", "word"), [
    ("/file a.py my\\ no", "my\\ no", "my no"),
    ("/file 'my no", "'my no", "my no"),
    ('/file "a b" "c d', '"c d', "c d"),
    ("/file ~/x", "~/x", "~/x"),
    ("/file ", "", ""),
])
def test_last_word_reads_quotes_and_escapes(text, raw, word):
    from streamchat.repl import last_word

    assert last_word(text) == (raw, word)


def test_shell_word_quotes_only_when_needed():
    from streamchat.repl import shell_word

    assert shell_word("~/notes/a.md") == "~/notes/a.md"
    assert shell_word("my notes.txt") == "'my notes.txt'"
    assert shell_word("it's") == "'it'\"'\"'s'"


def test_pending_files_and_attachments_are_listed_and_cleared(repl, server, tmp_path):
    """/file and /attach list what waits; clear drops it; Tab quotes a name with a space (#28.15)."""
    (tmp_path / "my notes.txt").write_text("SECRET-NOTES\n")
    (tmp_path / "pic.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    child = repl("-m", "openai:echo")
    child.send(f"/file {tmp_path}/my")
    child.send("\t")
    child.expect_exact("my notes.txt")  # in the menu; the line is redrawn in pieces, so read the screen
    deadline = time.monotonic() + 10
    while not any(f"/file '{tmp_path}/my notes.txt'" in line for line in screen_of(child)):
        assert time.monotonic() < deadline, screen_of(child)
        with contextlib.suppress(pexpect.TIMEOUT):
            child.expect("x^", timeout=0.2)  # read what arrives meanwhile
    child.send("\r")
    child.expect_exact("included: ")
    child.expect_exact(PROMPT)
    ask(child, "/file")
    child.expect_exact("sources for the next question: ")
    child.expect_exact("my notes.txt (")
    child.expect_exact("— /file clear drops them")
    exchange(child, "/file clear", "sources cleared")
    exchange(child, f"/attach {tmp_path}/pic.png", "attached: pic.png")
    exchange(child, "/attach", "attachments for the next question: pic.png")
    exchange(child, "/attach clear", "attachments cleared")
    exchange(child, "/file", "nothing waits for the next question")
    exchange(child, "plain", "echo: plain")
    assert server.last_messages() == [{"role": "user", "content": "plain"}]


def test_edit_last_quit_without_saving_sends_nothing(repl, server):
    """An editor that leaves the file as it was (vi's :q!) does not resend the question (#28.19)."""
    child = repl("-m", "openai:echo", env_extra={"EDITOR": "true"})
    exchange(child, "first try", "echo: first try")
    exchange(child, "/edit last", "unchanged — nothing sent")
    assert len(server.requests) == 1
    exchange(child, "next", "echo: next")  # the first exchange is still in the conversation
    assert [m["content"] for m in server.last_messages()] == ["first try", "echo: first try", "next"]


def test_alt_renders_the_answer_as_markdown(repl, server):
    """/alt draws the other answer as the stream did, not its raw Markdown (#28.20)."""
    server.script("md", Script(chunks=["# Title\n\n", "some **bold** words\n"]))
    child = repl("-m", "openai:md")
    exchange(child, "q", "words")
    exchange(child, "/retry", "words")
    ask(child, "/alt")
    child.expect_exact("answer 1 of 2:")
    child.expect_exact("words")
    child.expect_exact(PROMPT)
    lines = screen_of(child)
    shown = lines[max(i for i, line in enumerate(lines) if "answer 1 of 2:" in line):]
    assert any("some bold words" in line for line in shown), shown
    assert not any("**" in line or "# Title" in line for line in shown), shown


def test_a_template_role_is_filled_in_the_repl(repl, server, home):
    """`/role rev focus=security` fills the template; a missing value names the REPL's syntax (#28.9)."""
    cfg = home / "roles.toml"
    cfg.write_text('[roles.rev]\ntemplate = "Review for {{focus}}:\\n{{input}}"\n')
    child = repl("-m", "openai:echo", env_extra={"STREAMCHAT_CONFIG": str(cfg)})
    exchange(child, "/role rev", "its template needs {{focus}} — /role rev focus=…")
    exchange(child, "the code", "needs a value for {{focus}} — pass /role rev focus=…")
    assert not server.requests
    exchange(child, "/role rev focus='web security'", "role: rev (focus=web security)")
    exchange(child, "the code", "echo: Review for web security:")
    assert server.last_messages()[-1]["content"] == "Review for web security:\nthe code"
    exchange(child, "/role rev focus", "'focus' is not NAME=VALUE — e.g. /role rev focus=security")


def test_a_missing_template_value_names_the_flag_syntax(invoke, server, home):
    cfg = home / "roles.toml"
    cfg.write_text('[roles.rev]\ntemplate = "{{focus}} {{lang}}: {{input}}"\n')
    r = invoke("-m", "openai:echo", "-r", "rev", "q", env=base_env(home, server, STREAMCHAT_CONFIG=str(cfg)))
    assert r.code == 2 and "needs a value for {{focus}}, {{lang}} — pass -p focus=… -p lang=…" in r.stderr
    assert not server.requests


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_copy_inside_tmux_goes_into_its_buffer_and_says_so(repl, server, tmp_path):
    """tmux drops an application's OSC 52 unless set-clipboard is on (its default is external):
    /copy said "copied" while nothing was. Inside tmux the text goes into tmux's paste buffer
    (load-buffer -w also passes it on to the terminal), and the message says so (#28.24)."""
    import subprocess

    socket = str(tmp_path / "tmux.sock")
    tmux = ["tmux", "-S", socket, "-f", "/dev/null"]
    subprocess.run([*tmux, "new-session", "-d", "-s", "t", "sleep 60"], check=True)
    try:
        pid = subprocess.run([*tmux, "display", "-p", "#{pid}"], check=True, capture_output=True, text=True).stdout
        server.script("code", Script(chunks=["```sh\nls -la\n```\n"]))
        child = repl("-m", "openai:code", env_extra={"TMUX": f"{socket},{pid.strip()},0", "DISPLAY": "",
                                                     "WAYLAND_DISPLAY": ""})
        exchange(child, "show me", "code blocks: 1 sh")
        ask(child, "/copy 1")
        child.expect_exact("copied code block 1 into tmux's paste buffer")
        child.expect_exact("the terminal refuses clipboard writes")
        assert "\x1b]52;" not in child.logfile_read.getvalue()  # tmux would drop it
        shown = subprocess.run([*tmux, "show-buffer"], check=True, capture_output=True, text=True).stdout
        assert shown == "ls -la\n"
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)


def test_copy_through_osc52_names_what_may_drop_it(repl, server, tmp_path):
    """Where the text can only go out as OSC 52, the message says what may stop it: the terminal,
    and tmux (found by $TMUX, its command not at hand) unless its set-clipboard is on (#28.24)."""
    empty = tmp_path / "bin"
    empty.mkdir()
    child = repl("-m", "openai:echo", env_extra={"PATH": str(empty), "TMUX": "/nonexistent,1,0", "DISPLAY": ""})
    exchange(child, "hi", "echo: hi")
    ask(child, "/copy")
    child.expect_exact("copied the answer through the terminal (OSC 52) — if it is not on the clipboard, "
                       "the terminal refuses clipboard writes")
    child.expect_exact("tmux passes it on only with set -g set-clipboard on")


def test_an_edit_refused_before_it_is_logged_leaves_the_next_question_alone(repl, server, home, invoke):
    """Review 7: /edit last marked the next question *logged* as the edit; when the edited question
    was refused first (here a role's template missing a value), the next unrelated question was
    stored as the old answer's alternative ("To the question asked before /edit last")."""
    cfg = home / "roles.toml"
    cfg.write_text('[roles.rev]\ntemplate = "Review for {{focus}}:\\n{{input}}"\n')
    editor = home / "ed.sh"
    editor.write_text("#!/bin/sh\nprintf 'better question' > \"$1\"\n")
    editor.chmod(0o755)
    child = repl("-m", "openai:echo", env_extra={"STREAMCHAT_CONFIG": str(cfg), "EDITOR": str(editor)})
    exchange(child, "first try", "echo: first try")
    exchange(child, "/role rev", "its template needs {{focus}}")
    exchange(child, "/edit last", "needs a value for {{focus}}")
    exchange(child, "/role rev focus=style", "role: rev (focus=style)")
    exchange(child, "unrelated", "echo: Review for style:")
    shown = invoke("history", "show", "1").out
    assert "echo: first try" in shown and "unrelated" in shown, shown
    assert "before /edit last" not in shown, shown
