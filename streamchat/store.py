"""The conversation log in SQLite: every turn kept, partial answers included.

The queries live here; the tables and their migrations in `store_schema.py`.

Logging never loses an answer: a corrupt or locked database becomes one warning and
the answer is still printed.
"""

from __future__ import annotations

import json
import re
import shlex
import sqlite3
import time
from collections.abc import Callable
from dataclasses import replace
from functools import update_wrapper
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from streamchat.conversation import Conversation, Summary, Turn
from streamchat.errors import LogDamagedError, StreamchatError, UsageError
from streamchat.events import Attachment, Message, Outcome, Stats, ToolCall, TurnResult
from streamchat.leaderboard import Vote
from streamchat.store_schema import SCHEMA_VERSION, connect, db_path, migrate

__all__ = ["SCHEMA_VERSION", "ConversationLog", "connect", "damaged", "db_path", "migrate", "open_log",
           "session_name"]


# a conversation's cost: the sum over its answers, NULL when any answer's price is unknown
_COST = ("(SELECT CASE WHEN COUNT(*) = COUNT(m.cost_usd) THEN SUM(m.cost_usd) END FROM messages m"
         " WHERE m.conversation_id = c.id AND m.role = 'assistant')")

# the conversations `history` lists and `-c` continues: those with an answer. A request that failed
# before any text leaves one with 0 turns: kept (its error line, `history show ID`) but not listed.
_LISTED = "c.turns > 0"

SQL_MAX_LIMIT = 2**63 - 1  # SQLite's largest integer: `history -n 1e21` was "internal error: OverflowError"
_CORRUPT = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB


def damaged(path: Path, exc: BaseException) -> LogDamagedError | None:
    """The one line for a log SQLite finds corrupt (a bad page, not a database), or None."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return None
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+; the message before that
    if code not in _CORRUPT and not (code is None and ("malformed" in str(exc) or "not a database" in str(exc))):
        return None
    quoted = shlex.quote(str(path))
    return LogDamagedError(f"the conversation log {path} is damaged ({exc})",
                           hint=f"recover it: sqlite3 {quoted} .recover | sqlite3 {quoted}.recovered"
                                f" && mv {quoted}.recovered {quoted}")


P = ParamSpec("P")
R = TypeVar("R")


def _reads(method: Callable[Concatenate[ConversationLog, P], R]) -> Callable[Concatenate[ConversationLog, P], R]:
    """A read of the log that meets a corrupt page ends as LogDamagedError (one line and the way out),
    not as "internal error: DatabaseError"."""
    def checked(self: ConversationLog, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            problem = damaged(self.path, exc)
            if problem is None:
                raise
            raise problem from exc

    update_wrapper(checked, method)
    return checked


class ConversationLog:
    def __init__(self, db: sqlite3.Connection | None, warn: Callable[[str], None], write: bool = True,
                 path: Path | None = None) -> None:
        self.db = db
        self.warn = warn
        self.write = write and db is not None
        self.path = path or db_path()

    # -- reading -------------------------------------------------------------------------
    @_reads
    def pick(self, *, continue_last: bool = False, cid: str | int | None = None,
             session: str | None = None) -> Conversation:
        """The conversation a front end starts with: the latest (-c), one by id (--cid), the one named
        `session` (a new one of that name when there is none), or a new one."""
        if cid is None and not continue_last and session is None:
            return Conversation()
        if self.db is None:
            raise UsageError("the conversation log is not available", hint="check STREAMCHAT_DB")
        if session is not None:
            found = self._named(session_name(session))
            return self.load(found) if found is not None else Conversation(name=session)
        if cid is None:
            row = self.db.execute(f"SELECT id FROM conversations c WHERE {_LISTED}"
                                  " ORDER BY updated_at DESC, id DESC LIMIT 1").fetchone()
            if row is None:  # said, so a typo'd log path or a wiped log is not a silent fresh start
                self.warn("no earlier conversation to continue: this starts a new one")
                return Conversation()
            cid = row["id"]
        return self.load(cid)

    def _named(self, name: str) -> int | None:
        row = self._db().execute("SELECT id FROM conversations WHERE name = ?", (name,)).fetchone()
        return None if row is None else int(row[0])

    def _id(self, ref: str | int) -> int:
        """A conversation's id from its id or its name (names are never all digits)."""
        if isinstance(ref, int) or ref.strip().isdigit():
            return _as_id(ref)
        found = self._named(ref)
        if found is None:
            raise UsageError(f"no conversation with id or name '{ref}'", hint="see `streamchat history`", repl_hint="see /history")
        return found

    @_reads
    def load(self, cid: str | int) -> Conversation:
        """A conversation (by id or name) with the turns on its active path: the one ending at its newest answer."""
        db = self._db()
        conv = db.execute("SELECT * FROM conversations WHERE id = ?", (self._id(cid),)).fetchone()
        if conv is None:
            raise UsageError(f"no conversation with id {cid}", hint="see `streamchat history`", repl_hint="see /history")
        chain = self._ancestry(conv["id"])
        marks = ",".join("?" * len(chain))
        rows = db.execute(f"SELECT * FROM messages WHERE conversation_id IN ({marks}) ORDER BY id", chain).fetchall()
        leaf = conv["leaf_id"]
        if leaf is None:  # logs from before v6: the newest answer of this conversation
            leaf = next((r["id"] for r in reversed(rows) if r["role"] == "assistant" and r["conversation_id"] == conv["id"]
                         and not r["undone"]), 0)
        model = f"{conv['provider']}:{conv['model']}" if conv["provider"] else None
        attachments: dict[int, tuple[Attachment, ...]] = {}
        for cid_ in chain:
            attachments.update(self._attachments(cid_))
        turns = _turns(active_path(rows, leaf), attachments)
        return Conversation(conv["id"], conv["system"], model, turns, created_at=conv["created_at"],
                            forked_from=conv["forked_from"], name=conv["name"], summary=self._summary(chain, turns))

    def _summary(self, chain: list[int], turns: list[Turn]) -> Summary | None:
        """The newest summary that stands in for turns on this active path."""
        position = {t.id: n for n, t in enumerate(turns, 1) if t.id is not None}
        marks = ",".join("?" * len(chain))
        for row in self._db().execute(f"SELECT * FROM summaries WHERE conversation_id IN ({marks})"
                                      " ORDER BY turns DESC, id DESC", chain):
            if row["through_id"] in position:
                return Summary(row["content"], position[row["through_id"]], row["through_id"], row["saved"], stored=True)
        return None

    def keep_summary(self, conv: Conversation) -> None:
        """Log the conversation's summary if it is new (after its turn: a new conversation has its id then)."""
        s = conv.summary
        if not self.write or conv.id is None or s is None or s.stored or s.through_id is None:
            return
        try:
            self._db().execute("INSERT INTO summaries (conversation_id, through_id, turns, content, saved, created_at)"
                               " VALUES (?, ?, ?, ?, ?, ?)", (conv.id, s.through_id, s.turns, s.text, s.saved, time.time()))
        except sqlite3.Error as exc:
            self.warn(f"warning: could not save the conversation's summary: {exc} (it is made again when needed)")
            return
        conv.summary = replace(s, stored=True)

    def _ancestry(self, cid: int) -> list[int]:
        """This conversation and those it was forked from, nearest first."""
        chain = [cid]
        while len(chain) < 100:
            row = self._db().execute("SELECT forked_from FROM conversations WHERE id = ?", (chain[-1],)).fetchone()
            if row is None or row[0] is None or row[0] in chain:
                break
            chain.append(row[0])
        return chain

    def set_leaf(self, conv: Conversation, answer_id: int | None) -> None:
        """Make the active path end at `answer_id` (None: an empty conversation)."""
        if self.write and conv.id is not None:
            self._db().execute("UPDATE conversations SET leaf_id = ?, turns = ? WHERE id = ?",
                               (answer_id or 0, conv.turn_count, conv.id))

    def switch(self, conv: Conversation, number: int | None = None) -> tuple[int, int] | None:
        """Make `conv`'s last answer the `number`th (from 1) logged for the same question, or the next
        one (None: /alt); (its position, how many), None when there is no other. A number past them
        is a UsageError."""
        last = conv.last
        if last is None:
            return None
        choices = self.alternatives(conv, last)
        if number is not None and not 1 <= number <= len(choices):
            raise UsageError(f"there is no answer {number}: the last question has {len(choices)}",
                             hint=f"pick one from 1 to {len(choices)}")
        if number is not None and not choices[number - 1].counts and len(choices) > 1:
            empty = choices[number - 1]
            how = "failed" if empty.result.outcome is Outcome.FAILED else "was stopped"
            raise UsageError(f"answer {number} ({empty.model or '?'}) {how} with no text: there is nothing to continue",
                             hint="pick an answer that has text")
        position = next((i for i, t in enumerate(choices) if t.id == last.id), -1)
        # /alt cycles through the answers with text: a failed, empty one is no answer to continue from
        others = [i for i in (*range(position + 1, len(choices)), *range(position)) if choices[i].counts]
        if len(choices) < 2 or (number is None and not others):
            return None
        index = number - 1 if number is not None else others[0]
        conv.turns[-1] = choices[index]
        conv.model = choices[index].model or conv.model
        self.choose(conv, choices[index])
        return index + 1, len(choices)

    def choose(self, conv: Conversation, turn: Turn) -> None:
        """Make the active path end at `turn` (one of the question's alternatives: /alt, /pick, a race's
        first answer), and the conversation's model the one that answered it, which `-c` continues with."""
        if not self.write or conv.id is None:
            return
        self.set_leaf(conv, turn.id)
        if turn.model:
            provider, _, model = turn.model.partition(":")
            self._db().execute("UPDATE conversations SET provider = ?, model = ? WHERE id = ?", (provider, model, conv.id))

    def undo(self, conv: Conversation, turn: Turn) -> None:
        """Mark an exchange undone (it stays in the log) and end the path before it."""
        if self.write and conv.id is not None and turn.id is not None:
            self._db().execute("UPDATE messages SET undone = 1 WHERE id IN (?, (SELECT parent_id FROM messages"
                               " WHERE id = ?))", (turn.id, turn.id))
            self.set_leaf(conv, conv.parent_id)

    @_reads
    def alternatives(self, conv: Conversation, turn: Turn) -> list[Turn]:
        """Every answer logged for a question at the same point (the first answer, /retry's, a race's,
        and /edit last's, whose question differs: each Turn carries its own), oldest first."""
        return self.siblings(conv, turn)[0]

    @_reads
    def others(self, conv: Conversation, turn: Turn) -> list[Turn]:
        """The other questions asked at the same point as `turn`'s, with their answers, oldest first:
        one that failed (the next question follows the answer before it), one another process asked
        at once. Not alternatives: neither /alt nor `pick` goes to them."""
        return self.siblings(conv, turn)[1]

    @_reads
    def siblings(self, conv: Conversation, turn: Turn) -> tuple[list[Turn], list[Turn]]:
        """The exchanges logged at `turn`'s point, (its alternatives, the other questions').

        Alternatives share the question's text (/retry, a race) or are linked by /edit last, either
        way round and through several edits; a question with another text and no such link is another
        question (before v12 of the log, /edit last's too)."""
        if conv.id is None or turn.id is None:
            return [turn], []
        db = self._db()
        question = db.execute("SELECT q.* FROM messages a JOIN messages q ON q.id = a.parent_id WHERE a.id = ?",
                              (turn.id,)).fetchone()
        if question is None:
            return [turn], []
        rows = db.execute(
            "SELECT q.*, a.id AS answer_id FROM messages q JOIN messages a ON a.parent_id = q.id AND a.role = 'assistant'"
            " WHERE q.conversation_id = ? AND q.role = 'user' AND q.parent_id IS ? AND NOT a.undone"
            " ORDER BY a.id", (question["conversation_id"], question["parent_id"])).fetchall()
        group = {question["content"]}  # the texts of this question, then of those edits link to it
        while True:
            answers = {row["answer_id"] for row in rows if row["content"] in group}
            linked = {row["content"] for row in rows if row["edit_of"] in answers} | {
                row["content"] for row in rows for edit in rows
                if edit["content"] in group and edit["edit_of"] == row["answer_id"]}
            if linked <= group:
                break
            group |= linked
        attachments = self._attachments(question["conversation_id"])
        same: list[Turn] = []
        other: list[Turn] = []
        for row in rows:
            answer = db.execute("SELECT * FROM messages WHERE id = ?", (row["answer_id"],)).fetchone()
            (same if row["answer_id"] in answers else other).extend(_turns([row, answer], attachments))
        return same or [turn], other

    def _attachments(self, cid: int) -> dict[int, tuple[Attachment, ...]]:
        """The attachments of each question of a conversation, by message id."""
        found: dict[int, list[Attachment]] = {}
        for row in self._db().execute(
                "SELECT mb.message_id, b.name, b.mime, b.data FROM message_blobs mb JOIN blobs b ON b.hash = mb.hash"
                " JOIN messages m ON m.id = mb.message_id WHERE m.conversation_id = ? ORDER BY mb.message_id,"
                " mb.position", (cid,)):
            found.setdefault(row[0], []).append(Attachment(row[1], row[2], bytes(row[3])))
        return {k: tuple(v) for k, v in found.items()}

    # -- writing -------------------------------------------------------------------------
    def record(self, conv: Conversation, provider: str, model: str, prompt: str, result: TurnResult,
               attachments: tuple[Attachment, ...] = ()) -> int | None:
        """Save the question and the answer (partial or not) after `conv`'s last answered turn.

        Returns the answer's id (None when not saved); sets `conv.id` for a new conversation.
        Never raises: a broken database costs a warning, not the answer.
        """
        if not self.write:
            return None
        db = self._db()
        now = time.time()
        turns = conv.turn_count + (1 if result.text else 0)
        try:
            db.execute("BEGIN IMMEDIATE")
            if conv.id is None:
                if conv.name is not None and self._named(conv.name) is not None:  # another process took it meanwhile
                    self.warn(f"warning: the name '{conv.name}' was taken meanwhile; this conversation"
                              " is saved without it (history rename ID NAME)")
                    conv.name = None
                cur = db.execute(
                    "INSERT INTO conversations (created_at, updated_at, provider, model, system, title, turns, forked_from,"
                    " name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (now, now, provider, model, conv.system, storable(_title(prompt)), turns, conv.forked_from, conv.name))
                cid = cur.lastrowid
            else:
                cid = conv.id
                db.execute("UPDATE conversations SET updated_at = ?, provider = ?, model = ?, system = ?, turns = ?"
                           " WHERE id = ?", (now, provider, model, conv.system, turns, cid))
            cur = db.execute(
                "INSERT INTO messages (conversation_id, role, content, provider, model, created_at, parent_id, edit_of)"
                " VALUES (?, 'user', ?, ?, ?, ?, ?, ?)",
                (cid, storable(prompt), provider, model, now, conv.parent_id, conv.replacing))
            question_id = cur.lastrowid
            for position, a in enumerate(attachments):
                db.execute("INSERT OR IGNORE INTO blobs (hash, name, mime, data) VALUES (?, ?, ?, ?)",
                           (a.sha256, a.name, a.mime, a.data))
                db.execute("INSERT INTO message_blobs (message_id, position, hash) VALUES (?, ?, ?)",
                           (question_id, position, a.sha256))
            row = {"conversation_id": cid, "role": "assistant", "provider": provider, "model": model,
                   "created_at": time.time(), "parent_id": question_id, **_answer(result)}
            cur = db.execute(f"INSERT INTO messages ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                             tuple(row.values()))
            answer_id = cur.lastrowid
            db.execute("UPDATE conversations SET leaf_id = ? WHERE id = ?", (answer_id, cid))
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            self.warn(f"warning: could not save to the conversation log: {exc} (the answer above is complete)")
            return None
        conv.id = cid
        conv.replacing = None
        return answer_id

    def replace_answer(self, conv: Conversation, answer_id: int, result: TurnResult,
                       answered: tuple[str, str] | None = None) -> None:
        """Store `result` as the answer `answer_id` (a continued answer stays one answer, its text
        the parts joined; a race's held answer, `answered` by that provider and model). Never
        raises: a broken database costs a warning, not the answer."""
        if not self.write:
            return
        db = self._db()
        fields = _answer(result)
        if answered is not None:
            fields["provider"], fields["model"] = answered
        try:
            db.execute("BEGIN IMMEDIATE")
            old = db.execute("SELECT content FROM messages WHERE id = ?", (answer_id,)).fetchone()
            db.execute(f"UPDATE messages SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?",
                       (*fields.values(), answer_id))
            if old is not None and db.execute("SELECT 1 FROM sqlite_master WHERE name = 'messages_fts'").fetchone():
                # the search index has insert and delete triggers only: an edited text is re-indexed here
                db.execute("INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', ?, ?)",
                           (answer_id, old[0]))
                db.execute("INSERT INTO messages_fts(rowid, content) VALUES (?, ?)", (answer_id, result.text))
            db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (time.time(), conv.id))
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            self.warn(f"warning: could not save to the conversation log: {exc} (the answer above is complete)")

    def rename(self, conv: Conversation | str | int, name: str) -> None:
        """Name a conversation (a logged one by id or name, or a `Conversation`, saved with its name on
        its first answer). A name another conversation has is a UsageError: names pick one conversation."""
        name = session_name(name)
        cid = conv.id if isinstance(conv, Conversation) else self._id(conv)
        holder = self._named(name)
        if holder is not None and holder != cid:
            raise UsageError(f"the name '{name}' is taken by conversation {holder}",
                             hint=f"pick another name, or rename that one first: streamchat history rename {holder} NEW")
        if cid is not None and (self.write or not isinstance(conv, Conversation)):
            self._db().execute("UPDATE conversations SET name = ? WHERE id = ?", (name, cid))
        if isinstance(conv, Conversation):
            conv.name = name

    def _db(self) -> sqlite3.Connection:
        if self.db is None:
            raise UsageError("the conversation log is not available", hint="check STREAMCHAT_DB")
        return self.db

    # -- history commands ----------------------------------------------------------------
    @_reads
    def recent(self, limit: int = 20, since: float | None = None) -> list[sqlite3.Row]:
        """The newest `limit` conversations with an answer updated since `since`, each with its cost."""
        return self._db().execute(
            f"SELECT c.id, c.updated_at, c.provider, c.model, c.title, c.turns, c.name, {_COST} AS cost"
            f" FROM conversations c WHERE c.updated_at >= ? AND {_LISTED} ORDER BY c.updated_at DESC, c.id DESC LIMIT ?",
            (since or 0.0, min(limit, SQL_MAX_LIMIT))).fetchall()

    @_reads
    def tally(self, since: float | None = None) -> tuple[int, float, bool]:
        """All conversations updated since `since`, not only a page of them: (how many, their known
        cost, whether some prices are unknown)."""
        count, total, priced = self._db().execute(
            f"SELECT COUNT(*), TOTAL(cost), COUNT(cost) FROM (SELECT {_COST} AS cost FROM conversations c"
            f" WHERE c.updated_at >= ? AND {_LISTED})", (since or 0.0,)).fetchone()
        return count, total, priced < count

    @_reads
    def messages(self, cid: str | int) -> list[sqlite3.Row]:
        self.load(cid)  # raises a clear error for an unknown id
        return self._db().execute("SELECT * FROM messages WHERE conversation_id = ? ORDER BY id",
                               (self._id(cid),)).fetchall()

    @_reads
    def export(self, cid: str | int) -> dict[str, Any]:
        conv = dict(self._db().execute("SELECT * FROM conversations WHERE id = ?", (self._id(cid),)).fetchone() or {})
        if not conv:
            raise UsageError(f"no conversation with id {cid}", hint="see `streamchat history`", repl_hint="see /history")
        conv["messages"] = [dict(r) for r in self.messages(cid)]
        for message in conv["messages"]:
            if message.get("tool_steps"):  # stored as JSON text; exported as data
                message["tool_steps"] = json.loads(message["tool_steps"])
            message["attachments"] = [
                {"name": name, "mime": mime, "sha256": digest, "bytes": size}
                for name, mime, digest, size in self._db().execute(
                    "SELECT b.name, b.mime, b.hash, length(b.data) FROM message_blobs mb JOIN blobs b"
                    " ON b.hash = mb.hash WHERE mb.message_id = ? ORDER BY mb.position", (message["id"],))]
        conv["summaries"] = [dict(r) for r in self._db().execute(  # compaction's, each standing in for turns up to an answer
            "SELECT through_id, turns, content, saved, created_at FROM summaries WHERE conversation_id = ? ORDER BY id",
            (conv["id"],))]
        return conv

    @_reads
    def remove(self, cid: str | int) -> None:
        self.load(cid)
        self._db().execute("DELETE FROM messages WHERE conversation_id = ?", (self._id(cid),))
        self._db().execute("DELETE FROM conversations WHERE id = ?", (self._id(cid),))

    @_reads
    def search(self, text: str, limit: int = 20) -> list[sqlite3.Row]:
        limit = min(limit, SQL_MAX_LIMIT)
        db = self._db()
        has_fts = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'messages_fts'").fetchone()
        if has_fts:
            query = '"' + text.replace('"', '""') + '"'
            return db.execute(
                "SELECT m.conversation_id, m.role, snippet(messages_fts, 0, '[', ']', '…', 12) AS snippet"
                " FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid"
                # by the index's own rowid (the message id): FTS5 walks its matches newest first and
                # stops at the limit; by m.id, SQLite sorted every match (45 ms → 0.1 ms at 10,000
                # conversations for a common word, bench/history_search.py)
                " WHERE messages_fts MATCH ? ORDER BY messages_fts.rowid DESC LIMIT ?", (query, limit)).fetchall()
        return db.execute(
            "SELECT conversation_id, role, substr(content, 1, 80) AS snippet FROM messages"
            " WHERE content LIKE ? ORDER BY id DESC LIMIT ?", (f"%{text}%", limit)).fetchall()

    # -- votes (serve's compare mode) ----------------------------------------------------
    def add_vote(self, vote: Vote) -> int | None:
        """Store a vote; None, with a warning, when the log cannot take it."""
        if not self.write:
            return None
        try:
            cur = self._db().execute(
                "INSERT INTO votes (created_at, models, winner, outcome, blind, prompt) VALUES (?, ?, ?, ?, ?, ?)",
                (time.time(), json.dumps(list(vote.models), ensure_ascii=False), vote.winner, vote.outcome,
                 int(vote.blind), vote.prompt))
        except sqlite3.Error as exc:
            self.warn(f"warning: could not save the vote: {exc}")
            return None
        return cur.lastrowid

    @_reads
    def votes(self) -> list[Vote]:
        """Every stored vote, oldest first (a row that is no longer a valid vote is left out)."""
        found = []
        for row in self._db().execute("SELECT * FROM votes ORDER BY id"):
            try:
                found.append(Vote(tuple(json.loads(row["models"])), row["outcome"], row["winner"], bool(row["blind"]),
                                  row["prompt"], row["created_at"]))
            except (ValueError, TypeError):
                continue
        return found


def active_path(rows: list[Any], leaf_id: int) -> list[Any]:
    """The rows from the first question to the answer `leaf_id`, following parent links."""
    by_id = {row["id"]: row for row in rows}
    leaf = by_id.get(leaf_id)
    path = []
    while leaf is not None:
        path.append(leaf)
        leaf = by_id.get(leaf["parent_id"])
    return path[::-1]


_OUTCOMES = {"ok": Outcome.OK, "interrupted": Outcome.INTERRUPTED, "error": Outcome.FAILED}


def _turns(path: list[Any], attachments: dict[int, tuple[Attachment, ...]]) -> list[Turn]:
    """Question/answer row pairs as turns, with the stored outcome, timing and error line."""
    turns = []
    for question, answer in zip(path[::2], path[1::2], strict=False):  # an unanswered last question is dropped
        if question["role"] != "user" or answer["role"] != "assistant":
            continue
        stats = Stats(answer["ttft_ms"], answer["duration_ms"] or 0.0, answer["output_tokens"] or 0,
                      answer["input_tokens"], answer["cost_usd"])
        outcome = _OUTCOMES.get(answer["state"], Outcome.FAILED)
        error = StreamchatError(answer["error"]) if outcome is Outcome.FAILED and answer["error"] else None
        result = TurnResult(answer["content"], "", answer["finish_reason"], stats, outcome, error,
                            steps_from_json(answer["tool_steps"]))
        model = f"{answer['provider']}:{answer['model']}" if answer["provider"] else None
        turns.append(Turn(question["content"], result, answer["id"], model, attachments.get(question["id"], ())))
    return turns


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(text: str) -> str:
    """`text` as SQLite can hold it: a lone surrogate (a provider's `"\\ud800"`, which no UTF-8
    encoder takes) as U+FFFD. It raised UnicodeEncodeError out of `record`: the answer was lost
    and the command ended "internal error", exit 1."""
    return text if text.isascii() else _LONE_SURROGATE.sub("\ufffd", text)


def _answer(result: TurnResult) -> dict[str, Any]:
    """An answer row's columns that come from the turn (shared by a new answer and a continued one)."""
    s = result.stats
    return {"content": storable(result.text), "ttft_ms": s.ttft_ms, "duration_ms": s.total_ms, "input_tokens": s.input_tokens,
            "output_tokens": s.tokens, "finish_reason": result.finish_reason, "state": result.state,
            "error": None if result.ok else result.message, "cost_usd": s.cost_usd, "tool_steps": steps_json(result.steps)}


def steps_json(steps: tuple[Message, ...]) -> str | None:
    """Tool exchanges as JSON: each message's role, text, calls and the call it answers."""
    if not steps:
        return None
    return json.dumps([{"role": m.role, "content": m.content, "tool_call_id": m.tool_call_id, "is_error": m.is_error,
                        "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in m.tool_calls]}
                       for m in steps], ensure_ascii=False)


def steps_from_json(text: str | None) -> tuple[Message, ...]:
    if not text:
        return ()
    try:
        return tuple(Message(m["role"], m["content"], tool_call_id=m.get("tool_call_id"), is_error=bool(m.get("is_error")),
                             tool_calls=tuple(ToolCall(c["id"], c["name"], c["arguments"], i)
                                              for i, c in enumerate(m.get("tool_calls") or ())))
                     for m in json.loads(text))
    except (ValueError, KeyError, TypeError):
        return ()  # a damaged record: the answer is still shown, its tool steps are not resent


def _as_id(cid: str | int) -> int:
    try:
        return int(cid)
    except ValueError:
        raise UsageError(f"'{cid}' is not a conversation id", hint="ids are numbers; see `streamchat history`",
                         repl_hint="ids are numbers; see /history") from None


_NAME = re.compile(r"[\w.@+-]{1,64}")


def session_name(name: str) -> str:
    """`name` if it can name a conversation: 1-64 letters, digits and `.@+-_`, not all digits (those
    are ids). A UsageError otherwise, before anything is sent or saved."""
    if not _NAME.fullmatch(name) or name.isdigit():
        raise UsageError(f"'{name}' cannot name a conversation",
                         hint="use 1-64 letters, digits and . @ + - _, not only digits (those are ids), e.g. work")
    return name


def _title(prompt: str) -> str:
    return " ".join(prompt.split())[:60]


def open_log(*, enabled: bool, warn: Callable[[str], None], required: bool = False) -> ConversationLog:
    """The log, or a write-disabled one with a warning when the database is unusable (`required`:
    a damaged one is an error instead, for `history`)."""
    path = db_path()
    if not enabled and not path.exists():
        return ConversationLog(None, warn, write=False, path=path)
    try:
        return ConversationLog(connect(path), warn, write=enabled, path=path)
    except (sqlite3.Error, OSError) as exc:  # OSError: a read-only or uncreatable directory
        problem = damaged(path, exc)
        if required and problem is not None:
            raise problem from exc
        why = f"{exc.strerror}: {exc.filename}" if isinstance(exc, OSError) and exc.filename else str(exc)
        warn(f"warning: conversation log {path} is unusable ({why}); this answer will not be saved"
             + (f" — {problem.hint}" if problem is not None else ""))
        return ConversationLog(None, warn, write=False, path=path)
