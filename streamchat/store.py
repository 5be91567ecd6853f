"""The conversation log in SQLite: every turn kept, partial answers included.

Logging never loses an answer: a corrupt or locked database becomes one warning and
the answer is still printed.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamchat.config import Settings, data_dir
from streamchat.errors import UsageError
from streamchat.events import Message, TurnResult


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


MIGRATIONS: list[Callable[[], str]] = [lambda: V1, lambda: V2, lambda: V3_FTS if _fts5_available() else ""]
SCHEMA_VERSION = len(MIGRATIONS)


def _statements(script: str) -> list[str]:
    """Split a script into statements (trigger bodies hold semicolons too)."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    return [s for s in out if s]


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=10.0, isolation_level=None)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA busy_timeout = 10000")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA foreign_keys = ON")
    migrate(db)
    return db


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
                for statement in _statements(MIGRATIONS[number - 1]()):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise


@dataclass
class Conversation:
    id: int | None = None
    messages: list[Message] = field(default_factory=list)
    model: str | None = None  # "provider:model" of the last turn
    system: str | None = None


class ConversationLog:
    def __init__(self, db: sqlite3.Connection | None, warn: Callable[[str], None], write: bool = True) -> None:
        self.db = db
        self.warn = warn
        self.write = write and db is not None

    # -- reading -------------------------------------------------------------------------
    def pick(self, *, continue_last: bool = False, cid: str | int | None = None) -> Conversation:
        if cid is None and not continue_last:
            return Conversation()
        if self.db is None:
            raise UsageError("the conversation log is not available", hint="check STREAMCHAT_DB")
        if cid is None:
            row = self.db.execute("SELECT id FROM conversations ORDER BY updated_at DESC, id DESC LIMIT 1").fetchone()
            if row is None:
                return Conversation()
            cid = row["id"]
        return self.load(cid)

    def load(self, cid: str | int) -> Conversation:
        assert self.db is not None
        conv = self.db.execute("SELECT * FROM conversations WHERE id = ?", (_as_id(cid),)).fetchone()
        if conv is None:
            raise UsageError(f"no conversation with id {cid}", hint="see `streamchat history`")
        rows = self.db.execute("SELECT role, content FROM messages WHERE conversation_id = ? ORDER BY id",
                               (conv["id"],)).fetchall()
        model = f"{conv['provider']}:{conv['model']}" if conv["provider"] else None
        return Conversation(conv["id"], context_messages(rows), model, conv["system"])

    # -- writing -------------------------------------------------------------------------
    def record(self, conv: Conversation, provider: str, model: str, system: str | None, prompt: str,
               result: TurnResult) -> None:
        """Save the user turn and the answer (partial or not); never raises."""
        if not self.write:
            return
        assert self.db is not None
        now = time.time()
        try:
            self.db.execute("BEGIN IMMEDIATE")
            if conv.id is None:
                cur = self.db.execute(
                    "INSERT INTO conversations (created_at, updated_at, provider, model, system, title)"
                    " VALUES (?, ?, ?, ?, ?, ?)", (now, now, provider, model, system, _title(prompt)))
                conv.id = cur.lastrowid
            else:
                self.db.execute("UPDATE conversations SET updated_at = ?, provider = ?, model = ? WHERE id = ?",
                                (now, provider, model, conv.id))
            self.db.execute(
                "INSERT INTO messages (conversation_id, role, content, provider, model, created_at)"
                " VALUES (?, 'user', ?, ?, ?, ?)", (conv.id, prompt, provider, model, now))
            s = result.stats
            self.db.execute(
                "INSERT INTO messages (conversation_id, role, content, provider, model, created_at, ttft_ms,"
                " duration_ms, input_tokens, output_tokens, finish_reason, state, error)"
                " VALUES (?, 'assistant', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (conv.id, result.text, provider, model, time.time(), s.ttft_ms, s.total_ms, s.input_tokens,
                 s.tokens, result.finish_reason, result.state, result.error))
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            self.warn(f"warning: could not save to the conversation log: {exc} (the answer above is complete)")

    # -- history commands ----------------------------------------------------------------
    def recent(self, limit: int = 20) -> list[sqlite3.Row]:
        assert self.db is not None
        return self.db.execute(
            "SELECT c.id, c.updated_at, c.provider, c.model, c.title,"
            " (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id AND m.role = 'user') AS turns"
            " FROM conversations c ORDER BY c.updated_at DESC, c.id DESC LIMIT ?", (limit,)).fetchall()

    def messages(self, cid: str | int) -> list[sqlite3.Row]:
        assert self.db is not None
        self.load(cid)  # raises a clear error for an unknown id
        return self.db.execute("SELECT * FROM messages WHERE conversation_id = ? ORDER BY id",
                               (_as_id(cid),)).fetchall()

    def export(self, cid: str | int) -> dict[str, Any]:
        assert self.db is not None
        conv = dict(self.db.execute("SELECT * FROM conversations WHERE id = ?", (_as_id(cid),)).fetchone() or {})
        if not conv:
            raise UsageError(f"no conversation with id {cid}", hint="see `streamchat history`")
        conv["messages"] = [dict(r) for r in self.messages(cid)]
        return conv

    def remove(self, cid: str | int) -> None:
        assert self.db is not None
        self.load(cid)
        self.db.execute("DELETE FROM messages WHERE conversation_id = ?", (_as_id(cid),))
        self.db.execute("DELETE FROM conversations WHERE id = ?", (_as_id(cid),))

    def search(self, text: str, limit: int = 20) -> list[sqlite3.Row]:
        assert self.db is not None
        has_fts = self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'messages_fts'").fetchone()
        if has_fts:
            query = '"' + text.replace('"', '""') + '"'
            return self.db.execute(
                "SELECT m.conversation_id, m.role, snippet(messages_fts, 0, '[', ']', '…', 12) AS snippet"
                " FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid"
                " WHERE messages_fts MATCH ? ORDER BY m.id DESC LIMIT ?", (query, limit)).fetchall()
        return self.db.execute(
            "SELECT conversation_id, role, substr(content, 1, 80) AS snippet FROM messages"
            " WHERE content LIKE ? ORDER BY id DESC LIMIT ?", (f"%{text}%", limit)).fetchall()


def context_messages(rows: list[Any]) -> list[Message]:
    """Stored turns as context; a failed turn with no text (and its question) is left out."""
    out: list[Message] = []
    for row in rows:
        if row["role"] == "assistant" and not row["content"]:
            if out and out[-1].role == "user":
                out.pop()
            continue
        out.append(Message(row["role"], row["content"]))
    if out and out[-1].role == "user":
        out.pop()
    return out


def _as_id(cid: str | int) -> int:
    try:
        return int(cid)
    except ValueError:
        raise UsageError(f"'{cid}' is not a conversation id", hint="ids are numbers; see `streamchat history`") from None


def _title(prompt: str) -> str:
    return " ".join(prompt.split())[:60]


def open_log(settings: Settings, *, enabled: bool, warn: Callable[[str], None]) -> ConversationLog:
    """The log, or a write-disabled one with a warning when the database is unusable."""
    path = db_path()
    if not enabled and not path.exists():
        return ConversationLog(None, warn, write=False)
    try:
        return ConversationLog(connect(path), warn, write=enabled)
    except sqlite3.Error as exc:
        warn(f"warning: conversation log {path} is unusable ({exc}); this answer will not be saved")
        return ConversationLog(None, warn, write=False)
