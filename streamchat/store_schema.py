"""The conversation log's schema: the migrations from v1 to now, applied forward on open.

A change to the tables is one more entry at the end of `MIGRATIONS` (never an edit of an
earlier one: logs in the field have run it); `SCHEMA_VERSION` follows. The queries over
these tables live in `store.py`.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from streamchat.paths import data_dir
from streamchat.private_files import DIR_MODE, FILE_MODE, ensure_private_file, tighten


def db_path() -> Path:
    env = os.environ.get("STREAMCHAT_DB")
    return Path(env) if env else data_dir() / "log.db"


V1 = """
CREATE TABLE conversations (
    id INTEGER PRIMARY KEY,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    provider TEXT, model TEXT, system TEXT, title TEXT
);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role TEXT NOT NULL, content TEXT NOT NULL,
    provider TEXT, model TEXT, created_at REAL NOT NULL,
    ttft_ms REAL, duration_ms REAL, input_tokens INTEGER, output_tokens INTEGER, finish_reason TEXT
);
CREATE INDEX messages_conversation ON messages(conversation_id, id);
"""

# v2: partial answers — state is ok | interrupted | error, with the error line.
V2 = """
ALTER TABLE messages ADD COLUMN state TEXT NOT NULL DEFAULT 'ok';
ALTER TABLE messages ADD COLUMN error TEXT;
"""

# v3: full-text search where the SQLite build has FTS5 (LIKE search otherwise).
V3_FTS = """
CREATE VIRTUAL TABLE messages_fts USING fts5(content, content='messages', content_rowid='id');
INSERT INTO messages_fts(rowid, content) SELECT id, content FROM messages;
CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
END;
CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
END;
"""


def _fts5_available() -> bool:
    try:
        sqlite3.connect(":memory:").execute("CREATE VIRTUAL TABLE t USING fts5(x)")
        return True
    except sqlite3.OperationalError:
        return False


# v4: each message links to its parent, so a regenerated answer is a branch, not a second copy
# of the question; conversations keep their count of answered turns on the active path.
V4 = """
ALTER TABLE messages ADD COLUMN parent_id INTEGER;
UPDATE messages SET parent_id = (SELECT MAX(p.id) FROM messages p
    WHERE p.conversation_id = messages.conversation_id AND p.id < messages.id);
ALTER TABLE conversations ADD COLUMN turns INTEGER NOT NULL DEFAULT 0;
UPDATE conversations SET turns = (SELECT COUNT(*) FROM messages m
    WHERE m.conversation_id = conversations.id AND m.role = 'assistant' AND m.content != '');
"""

# v5: attachments stored once by content hash, linked to the questions that carried them.
V5 = """
CREATE TABLE blobs (hash TEXT PRIMARY KEY, name TEXT NOT NULL, mime TEXT NOT NULL, data BLOB NOT NULL);
CREATE TABLE message_blobs (
    message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    hash TEXT NOT NULL REFERENCES blobs(hash),
    PRIMARY KEY (message_id, position)
);
"""

# v6: the active path's end is stored (so /undo and /alt move it), forks name their origin,
# and undone exchanges stay in the log, marked.
V6 = """
ALTER TABLE conversations ADD COLUMN leaf_id INTEGER;
ALTER TABLE conversations ADD COLUMN forked_from INTEGER;
ALTER TABLE messages ADD COLUMN undone INTEGER NOT NULL DEFAULT 0;
"""

# v7: what each answer cost (NULL: unknown price).
V7 = "ALTER TABLE messages ADD COLUMN cost_usd REAL;"

# v8: the tool exchanges (calls and results) that led to an answer, as JSON on the answer's row.
V8 = "ALTER TABLE messages ADD COLUMN tool_steps TEXT;"

# v9: a conversation may have a name (`--session NAME`), unique among conversations (NULLs are not).
V9 = """
ALTER TABLE conversations ADD COLUMN name TEXT;
CREATE UNIQUE INDEX conversations_name ON conversations(name);
"""

# v10: compaction's summaries, each standing in for the turns up to an answer (which stay logged).
V10 = """
CREATE TABLE summaries (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    through_id INTEGER NOT NULL, turns INTEGER NOT NULL, content TEXT NOT NULL, saved INTEGER NOT NULL,
    created_at REAL NOT NULL
);
"""

# v11: serve's compare-mode votes: the models in the order shown (JSON), the winner (NULL for a tie or
# "both bad"), whether the names were hidden, and the question's opening.
V11 = """
CREATE TABLE votes (
    id INTEGER PRIMARY KEY,
    created_at REAL NOT NULL,
    models TEXT NOT NULL,
    winner TEXT,
    outcome TEXT NOT NULL CHECK (outcome IN ('win', 'tie', 'bad')),
    blind INTEGER NOT NULL,
    prompt TEXT NOT NULL
);
"""

# v12: a question asked by /edit last names the answer it replaced: only those (and /retry's, a race's, which
# share the question's text) are alternatives of one question; another question at the same point (one that
# failed before it, or asked by another process at once) is shown as its own exchange.
V12 = "ALTER TABLE messages ADD COLUMN edit_of INTEGER;"

MIGRATIONS: list[Callable[[], str]] = [lambda: V1, lambda: V2, lambda: V3_FTS if _fts5_available() else "",
                                       lambda: V4, lambda: V5, lambda: V6, lambda: V7, lambda: V8, lambda: V9,
                                       lambda: V10, lambda: V11, lambda: V12]
SCHEMA_VERSION = len(MIGRATIONS)


def statements(script: str) -> list[str]:
    """Split a script into statements (trigger bodies hold semicolons too)."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    return [s for s in out if s]


def connect(path: Path) -> sqlite3.Connection:
    if path.parent == data_dir():  # our own directory, perhaps made 0755 by an older streamchat
        tighten(path.parent, DIR_MODE)
    ensure_private_file(path)  # SQLite gives -wal and -shm the database file's mode
    for leftover in (f"{path}-wal", f"{path}-shm"):  # from a run that ended before closing the log
        tighten(Path(leftover), FILE_MODE)
    db = sqlite3.connect(path, timeout=10.0, isolation_level=None)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA busy_timeout = 10000")
    _wal(db)
    # A commit appends to the WAL without an fsync; the WAL is synced at each checkpoint. A saved turn
    # then costs the prompt that follows it no fsync (1.6 ms median here, 5–30 ms on many disks); a
    # power cut may lose the last turns, never the log's consistency (SQLite's WAL guarantee).
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA foreign_keys = ON")
    migrate(db)
    return db


def _wal(db: sqlite3.Connection, patience: float = 10.0) -> None:
    """Switch the log to WAL, waiting for another process that holds it.

    SQLite answers a journal-mode change "database is locked" at once, without the busy handler,
    while another connection holds a write lock: two streamchats started together on a new log
    (one already migrating it) lost one answer to "the log is unusable". Retried here for as long
    as busy_timeout would have waited."""
    deadline = time.monotonic() + patience
    pause = 0.005
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def migrate(db: sqlite3.Connection) -> None:
    """Apply forward migrations past PRAGMA user_version, each in its own transaction.

    The version is re-read inside the write lock, so two processes opening a new
    database at once do not both run a migration.
    """
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(f"log schema v{version} is newer than this streamchat (v{SCHEMA_VERSION})")
    for number in range(version + 1, SCHEMA_VERSION + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            if db.execute("PRAGMA user_version").fetchone()[0] < number:
                for statement in statements(MIGRATIONS[number - 1]()):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
