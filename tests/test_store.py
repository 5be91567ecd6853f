"""The SQLite conversation log through the CLI against the fake server."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from unittest.mock import ANY

import pytest
from conftest import STREAMCHAT, base_env
from fakeserver import Script
from import_probe import imported_by

from streamchat.exit_status import ExitStatus
from streamchat.store import connect
from streamchat.store_schema import SCHEMA_VERSION, V1

MCP_SERVER = str(Path(__file__).parent / "mcp_files_server.py")


def rows(home, sql="SELECT role, content, state FROM messages ORDER BY id"):
    db = sqlite3.connect(home / "log.db")
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_continue_with_an_empty_log_says_it_starts_a_new_conversation(invoke, server):
    """`-c` on an empty log answered as a new conversation without a word; now one line on stderr says
    so (stdout is still only the answer, and the exchange is logged)."""
    r = invoke("-m", "openai:echo", "-c", "hi there")
    assert r.code == 0 and r.out == "echo: hi there\n"
    assert "no earlier conversation to continue: this starts a new one" in r.stderr
    again = invoke("-m", "openai:echo", "-c", "and then")
    assert again.code == 0 and "no earlier conversation" not in again.stderr


def test_continue_sends_earlier_turns(invoke, server, home):
    assert invoke("-m", "openai:echo", "-s", "sys", "first").code == 0
    r = invoke("-c", "second")
    assert r.code == 0, r.stderr
    assert server.requests[-1].body["model"] == "echo"  # the conversation's model is kept
    assert server.last_messages() == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "echo: first"},
        {"role": "user", "content": "second"},
    ]
    assert [r[0] for r in rows(home)] == ["user", "assistant", "user", "assistant"]
    r = invoke("--cid", "1", "-m", "anthropic:echo", "third")
    assert r.code == 0 and len(server.last_messages()) == 5


def test_interrupted_stream_is_stored_with_partial_text(server, home):
    server.script("slow", Script(chunks=[f"w{i} " for i in range(100)], delay=0.05))
    proc = subprocess.Popen([STREAMCHAT, "-m", "openai:slow", "q"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=base_env(home, server))
    shown = proc.stdout.read1(100)
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=10)
    assert proc.returncode == 130
    (content, state), = rows(home, "SELECT content, state FROM messages WHERE role = 'assistant'")
    assert state == "interrupted"
    assert content + "\n" == (shown + rest).decode() and content.startswith("w0 ")


def test_error_mid_stream_is_stored_marked(invoke, server, home):
    server.script("drop", Script(chunks=["part one ", "part two"], fault="drop", fault_after=1))
    r = invoke("-m", "openai:drop", "q")
    assert r.code == 6
    assert r.out == "part one \n"
    (content, state), = rows(home, "SELECT content, state FROM messages WHERE role = 'assistant'")
    assert (content, state) == ("part one ", "error")


def test_two_concurrent_processes_both_land(server, home):
    server.script("slowish", Script(chunks=["a", "b", "c"], delay=0.1))
    env = base_env(home, server)
    procs = [subprocess.Popen([STREAMCHAT, "-m", "openai:slowish", f"q{i}"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) for i in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        assert b"warning" not in err
    assert rows(home, "SELECT COUNT(*) FROM conversations")[0][0] == 2
    assert rows(home, "SELECT COUNT(*) FROM messages")[0][0] == 4


def test_export_formats_parse(invoke, server, home):
    invoke("-m", "openai:echo", "hello **there**")
    r = invoke("history", "export", "1", "--format", "json")
    data = json.loads(r.out)
    assert [m["role"] for m in data["messages"]] == ["user", "assistant"]
    assert data["messages"][1]["content"] == "echo: hello **there**"
    assert data["messages"][1]["output_tokens"] >= 1 and data["messages"][1]["ttft_ms"] > 0
    md = invoke("history", "export", "1").out
    assert "## User" in md and "hello **there**" in md
    assert invoke("history").out.startswith("1\t")
    assert "there" in invoke("history", "search", "there").out
    assert invoke("history", "show", "1").out == md
    assert invoke("history", "rm", "1").code == 0
    assert invoke("history", "show", "1").code == 2


def test_migration_from_v1(invoke, server, home):
    db = sqlite3.connect(home / "log.db")
    db.executescript(V1)
    db.execute("INSERT INTO conversations VALUES (1, 0, 0, 'openai', 'echo', NULL, 'old')")
    db.execute("INSERT INTO messages (conversation_id, role, content, created_at) VALUES (1, 'user', 'old q', 0)")
    db.execute("INSERT INTO messages (conversation_id, role, content, created_at) VALUES (1, 'assistant', 'old a', 0)")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    r = invoke("-c", "new q")
    assert r.code == 0, r.stderr
    assert server.last_messages()[:2] == [{"role": "user", "content": "old q"}, {"role": "assistant", "content": "old a"}]
    assert rows(home, "PRAGMA user_version")[0][0] == SCHEMA_VERSION
    assert rows(home, "SELECT state FROM messages WHERE id = 1")[0][0] == "ok"
    assert "old" in invoke("history", "search", "old").out


def test_no_log_writes_nothing(invoke, server, home):
    r = invoke("-m", "openai:echo", "--no-log", "q")
    assert r.code == 0
    assert not (home / "log.db").exists()


def test_corrupt_database_still_prints_answer(invoke, server, home):
    (home / "log.db").write_bytes(b"this is not a database" * 100)
    r = invoke("-m", "openai:echo", "q")
    assert r.code == 0
    assert r.out == "echo: q\n"
    assert "warning" in r.stderr and "not be saved" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("where", ["STREAMCHAT_DB", "XDG_DATA_HOME"])
def test_an_uncreatable_log_directory_costs_a_warning_not_the_answer(invoke, server, home, tmp_path, where):
    """A data directory that cannot be made (here: a file where it should be; a read-only one fails
    the same way) ended in "internal error: OSError", exit 1, no answer."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = base_env(home, server)
    if where == "STREAMCHAT_DB":
        env["STREAMCHAT_DB"] = str(blocker / "sub" / "log.db")
    else:
        del env["STREAMCHAT_DB"]
        env["XDG_DATA_HOME"] = str(blocker)
    root = home / "root"
    root.mkdir()
    (root / "a.py").write_text("x = 1\n")
    config = home / "streamchat.toml"  # with an MCP server, whose log lives in the data directory too
    config.write_text(config.read_text() + f'[mcp.files]\ncommand = "{sys.executable}"\nargs = ["{MCP_SERVER}", "{root}"]\n')
    server.script("tooly", Script(chunks=["Looking."], tool_calls=[("c1", "read_file", {"path": "a.py"})]))
    for args in (["q"], ["--tools", "files", "--approve", "files", "q"]):
        r = invoke("-m", "openai:tooly" if "--tools" in args else "openai:echo", *args, env=env)
        assert r.code == 0 and r.out in ("echo: q\n", "Looking.\ngot: x = 1\n"), r.stderr
        warning = r.stderr.splitlines()[0]
        assert warning.startswith("warning: conversation log ") and "Not a directory" in warning
        assert warning.endswith("this answer will not be saved") and "internal error" not in r.stderr


def test_a_corrupt_page_is_one_line_naming_the_file_and_sqlite3_recover(invoke, server, home):
    """A damaged page ended `history`, `history show` and `-c` in "internal error: DatabaseError"."""
    db = connect(home / "log.db")
    for n in range(300):
        db.execute("INSERT INTO conversations (created_at, updated_at, title, turns) VALUES (?, ?, ?, 1)",
                   (n, n, f"question {n} " + "padding " * 20))
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.close()
    assert pages > 8
    with open(home / "log.db", "r+b") as handle:  # a page of the conversations table, torn
        handle.seek(4096 * 3)
        handle.write(b"\xff" * 4096)
    for args in (["history"], ["history", "show", "1"], ["-c", "-m", "openai:echo", "q"]):
        r = invoke(*args)
        assert r.code == ExitStatus.LOG_DAMAGED == 11 and r.out == "", (args, r.stderr)
        assert r.stderr.startswith(f"error: the conversation log {home / 'log.db'} is damaged")
        assert f"sqlite3 {home / 'log.db'} .recover" in r.stderr and len(r.stderr.splitlines()) == 1
    if shutil.which("sqlite3"):  # the way out it names works
        fix = r.stderr.split("recover it: ", 1)[1].strip()
        assert subprocess.run(fix, shell=True, capture_output=True).returncode == 0
        assert invoke("history").code == 0


def test_history_counts_every_conversation_and_says_the_page_apart(invoke, server, home):
    """`history --since 7d` said "20 conversations" when there were 94: it counted the page."""
    db = connect(home / "log.db")
    now = time.time()
    for n in range(94):
        cid = db.execute("INSERT INTO conversations (created_at, updated_at, provider, model, title, turns)"
                         " VALUES (?, ?, 'openai', 'echo', ?, 1)", (now - n, now - n, f"q{n}")).lastrowid
        db.execute("INSERT INTO messages (conversation_id, role, content, created_at, cost_usd)"
                   " VALUES (?, 'assistant', 'a', ?, ?)", (cid, now - n, 0.01 if n else None))
    db.execute("INSERT INTO conversations (created_at, updated_at, title, turns) VALUES (0, 0, 'old', 1)")
    db.close()
    week = invoke("history", "--since", "7d")
    assert week.code == 0 and len(week.out.splitlines()) == 20
    assert week.stderr == ("94 conversations since 7d: total $0.9300 (some prices unknown);"
                           " the latest 20 shown (-n 94 for all)\n")
    everything = invoke("history", "-n", "200")
    assert len(everything.out.splitlines()) == 95 and everything.stderr == ""  # all shown: nothing to add
    paged = invoke("history")
    assert paged.stderr == "95 conversations: total $0.9300 (some prices unknown); the latest 20 shown (-n 95 for all)\n"


def test_a_request_that_failed_before_any_text_is_not_listed_nor_continued(invoke, server, home):
    """Each failed request left a "0 turns" conversation in `history`, and `-c` continued it."""
    server.script("bad", Script(status=500))
    assert invoke("-m", "openai:echo", "q1").code == 0
    for _ in range(2):
        assert invoke("-m", "openai:bad", "--no-retry", "q2").code == 5
    assert rows(home, "SELECT id, turns FROM conversations ORDER BY id") == [(1, 1), (2, 0), (3, 0)]  # kept
    listed = invoke("history", "--since", "1d")
    assert [line.split("\t")[:4] for line in listed.out.splitlines()] == [["1", ANY, "openai:echo", "1"]]
    assert listed.stderr.startswith("1 conversations since 1d")
    assert "HTTP 500" in invoke("history", "show", "3").out  # its error line is still there to see
    assert invoke("-c", "-m", "openai:echo", "q3").code == 0
    assert [m["content"] for m in server.last_messages()] == ["q1", "echo: q1", "q3"]


def test_empty_history_and_a_search_without_matches_say_so_on_stderr(invoke, server):
    """Nothing on stdout for scripts, and one line for the person (an empty table said nothing)."""
    empty = invoke("history")
    assert empty.code == 0 and empty.out == "" and "no conversations logged yet" in empty.stderr
    assert "no conversations since 1d" in invoke("history", "--since", "1d").stderr
    invoke("-m", "openai:echo", "hello there")
    assert invoke("history").out.count("\n") == 1
    missing = invoke("history", "search", "zebra")
    assert missing.code == 0 and missing.out == "" and "no logged message matches 'zebra'" in missing.stderr
    assert "hello" in invoke("history", "search", "hello").out
    for blank in ("", "  "):  # matched nothing and said "no logged message matches ''"
        empty_search = invoke("history", "search", blank)
        assert empty_search.code == 2 and "needs words to find" in empty_search.stderr


@pytest.mark.parametrize("fmt", ["md", "json"])
def test_history_export_to_a_terminal_shows_escape_sequences_escaped(invoke, home, server, fmt):
    """#35.25: an answer holding a title change and a bidi override is stored as sent; exported to a
    terminal it must not reach the terminal raw (a file still gets the exact bytes)."""
    import pexpect

    server.script("esc", Script(chunks=["title \x1b]0;PWNED\x07 and \u202eevil"]))
    assert invoke("-m", "openai:esc", "q").code == 0
    exported = invoke("history", "export", "--format", fmt, "1")
    assert exported.code == 0 and ("\x1b]0;PWNED" in exported.out or "\\u001b]0;PWNED" in exported.out)
    child = pexpect.spawn(STREAMCHAT, ["history", "export", "--format", fmt, "1"], env=base_env(home, server),
                          encoding="utf-8", timeout=30)
    child.expect(pexpect.EOF)
    shown = child.before
    assert "PWNED" in shown and "\x1b]0;" not in shown and "\u202e" not in shown and "\x07" not in shown, repr(shown)


def test_a_retry_notice_masks_credentials_in_the_base_url(home):
    """#35.23: a connection refused at a base_url with user:pass is retried with a notice that must
    not show the password."""
    cfg = home / "cred.toml"
    cfg.write_text('retries = 1\n'  # one notice is enough (each retry waits its backoff)
                   '[providers.compat]\ntype = "openai"\nbase_url = "http://bob:s3cretpass@127.0.0.1:1/v1"\n'
                   'api_key = "sk-test-nothing"\n')
    env = base_env(home, STREAMCHAT_CONFIG=str(cfg))
    for args in ((), ("--debug",)):
        proc = subprocess.run([STREAMCHAT, *args, "-m", "compat:x", "q"], env=env, capture_output=True,
                              stdin=subprocess.DEVNULL, timeout=60)
        err = proc.stderr.decode()
        assert proc.returncode != 0 and "retrying" in err and "s3cretpass" not in err, err


def test_search_gives_the_newest_matches_first(tmp_path):
    """Ordered by the full-text index's rowid (the message id), as it was by messages.id: newest
    first, the limit taken from the top (#34: 45 ms → 0.1 ms at 10,000 conversations)."""
    from streamchat.store import ConversationLog, migrate

    db = connect(tmp_path / "log.db")
    migrate(db)
    for i in range(30):
        cid = db.execute("INSERT INTO conversations (created_at, updated_at, title, turns) VALUES (0, 0, ?, 1)",
                         (f"c{i}",)).lastrowid
        db.execute("INSERT INTO messages (conversation_id, role, content, created_at) VALUES (?, 'user', ?, 0)",
                   (cid, f"common word {i}" if i % 3 else f"other {i}"))
    found = ConversationLog(db, warn=print).search("common", limit=5)
    assert [r["conversation_id"] for r in found] == [30, 29, 27, 26, 24]  # i = 29, 28, 26, 25, 23
    assert found[0]["snippet"] == "[common] word 29"




@pytest.mark.e2e
def test_history_commands_import_no_sdk(invoke, server, home):
    invoke("-m", "openai:echo", "hello there")
    env = base_env(home, server)
    for argv in (["history"], ["history", "search", "there"], ["history", "show", "1"], ["history", "export", "1"]):
        imported, p = imported_by(argv, ("openai", "anthropic", "httpx2", "pydantic", "genai_prices", "aiohttp", "llama_cpp"),
                                  env=env)
        assert "there" in p.stdout, (argv, p.stderr)
        assert imported == set(), argv


def test_a_saved_turn_does_not_wait_for_an_fsync(tmp_path):
    """WAL with synchronous=NORMAL: a commit appends to the WAL, synced at checkpoints, so the REPL's
    prompt after a turn does not wait for the disk (#34); FULL (SQLite's default) synced every commit."""
    db = connect(tmp_path / "log.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
