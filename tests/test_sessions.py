"""Named sessions (`--session NAME`, `/name`, `/load NAME`, `history rename`) through the CLI and the REPL."""

from __future__ import annotations

import sqlite3

import pytest
from test_repl import ask, exchange
from test_repl import repl as repl  # noqa: F401 — the pexpect fixture
from test_store import rows

from streamchat.errors import UsageError
from streamchat.exit_status import ExitStatus
from streamchat.store import session_name
from streamchat.store_schema import MIGRATIONS, SCHEMA_VERSION, statements


def contents(messages: list[dict]) -> list[str]:
    return [m["content"] for m in messages]


def test_two_sessions_alternated_never_mix(invoke, server, home):
    """`--session work` / `--session play`, alternated: each request carries its own turns only."""
    sent: dict[str, list[str]] = {"work": [], "play": []}
    for i in range(3):
        for name in ("work", "play"):
            question = f"{name} question {i}"
            r = invoke("-m", "openai:echo", "--session", name, question)
            assert r.code == 0 and r.out == f"echo: {question}\n", r.stderr
            assert contents(server.last_messages()) == [*sent[name], question]
            sent[name] += [question, f"echo: {question}"]
    assert rows(home, "SELECT name, turns FROM conversations ORDER BY id") == [("work", 3), ("play", 3)]
    listed = invoke("history").out.splitlines()  # id, when, model, turns, title, name, cost
    assert [line.split("\t")[5] for line in listed] == ["play", "work"]
    shown = invoke("history", "show", "work").out  # a name goes wherever an id does
    assert shown.startswith("# Conversation 1 (work)") and "play" not in shown


def test_session_with_continue_or_cid_is_one_line_and_exit_2(invoke, server):
    for flags in (["-c"], ["--cid", "1"]):
        r = invoke("-m", "openai:echo", "-S", "work", *flags, "q")
        assert r.code == ExitStatus.USAGE and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "--session" in r.stderr
    assert not server.requests


def test_a_bad_name_is_refused_before_anything_is_sent(invoke, server):
    r = invoke("-m", "openai:echo", "-S", "12", "q")
    assert r.code == ExitStatus.USAGE and "cannot name a conversation" in r.stderr and not server.requests


def test_history_rename_names_a_conversation_and_refuses_a_taken_name(invoke, server, home):
    assert invoke("-m", "openai:echo", "one").code == 0
    assert invoke("-m", "openai:echo", "two").code == 0
    renamed = invoke("history", "rename", "1", "work")
    assert renamed.code == 0 and "conversation 1 is now named work" in renamed.stderr
    taken = invoke("history", "rename", "2", "work")
    assert taken.code == ExitStatus.USAGE and len(taken.stderr.strip().splitlines()) == 1
    assert "taken by conversation 1" in taken.stderr
    assert invoke("history", "rename", "work", "work").code == 0  # its own name: nothing to refuse
    assert rows(home, "SELECT id, name FROM conversations ORDER BY id") == [(1, "work"), (2, None)]
    assert invoke("-S", "work", "three").code == 0
    assert contents(server.last_messages()) == ["one", "echo: one", "three"]


def test_a_log_made_by_the_previous_schema_opens_and_takes_names(invoke, server, home):
    """A v8 log (before names): conversations keep working, `history` lists them, and they can be named."""
    db = sqlite3.connect(home / "log.db", isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:8], 1):
        for statement in statements(script()):
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {number}")
    db.execute("INSERT INTO conversations (id, created_at, updated_at, provider, model, title, turns, leaf_id)"
               " VALUES (1, 0, 0, 'openai', 'echo', 'old', 1, 2)")
    db.execute("INSERT INTO messages (id, conversation_id, role, content, created_at) VALUES (1, 1, 'user', 'old q', 0)")
    db.execute("INSERT INTO messages (id, conversation_id, role, content, created_at, parent_id)"
               " VALUES (2, 1, 'assistant', 'old a', 0, 1)")
    db.close()
    listed = invoke("history")
    assert listed.code == 0 and listed.out.split("\t")[4:6] == ["old", ""], listed.stderr
    assert rows(home, "PRAGMA user_version")[0][0] == SCHEMA_VERSION
    assert invoke("history", "rename", "1", "old-one").code == 0
    r = invoke("--session", "old-one", "new q")
    assert r.code == 0, r.stderr
    assert contents(server.last_messages()) == ["old q", "old a", "new q"]


def test_repl_name_load_and_resume_by_name(repl, invoke, server):  # noqa: F811
    assert invoke("-m", "openai:echo", "-S", "play", "a game").code == 0
    child = repl("-m", "openai:echo")
    exchange(child, "work question", "echo: work question")
    exchange(child, "/name play", "taken by conversation 1")  # one line; the conversation stays unnamed
    exchange(child, "/name work", "name: work")
    exchange(child, "/history", "[work]")
    exchange(child, "/load play", "loaded conversation play (1 turn)")
    exchange(child, "more", "echo: more")
    assert contents(server.last_messages()) == ["a game", "echo: a game", "more"]
    child.sendeof()
    again = repl("-S", "work")
    assert "resumed conversation 2 (work, 1 turn)" in again.logfile_read.getvalue()  # said before the prompt
    ask(again, "and now")
    again.expect_exact("echo: and now")
    assert contents(server.last_messages()) == ["work question", "echo: work question", "and now"]


def test_repl_session_that_does_not_exist_yet_is_started_under_its_name(repl, invoke, server, home):  # noqa: F811
    child = repl("-m", "openai:echo", "--session", "fresh")
    assert "new conversation fresh" in child.logfile_read.getvalue()
    exchange(child, "hello", "echo: hello")
    assert rows(home, "SELECT name FROM conversations") == [("fresh",)]


@pytest.mark.parametrize("name", ["", "123", "two words", "a\x1b[31m", "x" * 65, "semi;colon"])
def test_names_that_cannot_name_a_conversation(name):
    with pytest.raises(UsageError):
        session_name(name)


@pytest.mark.parametrize("name", ["work", "proj-2", "café", "a.b@c+d_e", "7up"])
def test_names_that_can(name):
    assert session_name(name) == name
