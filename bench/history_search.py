"""`history search`'s SQL at CONVERSATIONS logged conversations (default 10,000, a question and an
answer each): ConversationLog.search's time, median of RUNS, for a word in every conversation
(the newest 20 of 20,000 matches: the case the order decides), a word in one conversation in a
hundred, and one in a single conversation, next to the same query ordered by messages.id (before #34)."""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from streamchat.store import ConversationLog, connect, migrate

CONVERSATIONS = int(os.environ.get("CONVERSATIONS", "10000"))
RUNS = int(os.environ.get("RUNS", "20"))
WORDS = ["docker", "compose", "kubernetes", "python", "rust", "latency", "socket", "parser", "token", "stream",
         "cache", "index", "query", "window", "render", "buffer", "thread", "async", "pipe"]
OLD = ("SELECT m.conversation_id, m.role, snippet(messages_fts, 0, '[', ']', '…', 12) AS snippet"
       " FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid"
       " WHERE messages_fts MATCH ? ORDER BY m.id DESC LIMIT ?")


def fill(path: Path) -> None:
    db = connect(path)
    migrate(db)
    rng = random.Random(34)
    now = time.time()
    db.execute("BEGIN")
    for i in range(CONVERSATIONS):
        cid = db.execute("INSERT INTO conversations (created_at, updated_at, provider, model, title, turns)"
                         " VALUES (?, ?, 'openai', 'gpt-4o-mini', ?, 1)", (now, now, f"question {i}")).lastrowid
        extra = " rareword" if i % 100 == 0 else ""
        extra += " uniqueword" if i == CONVERSATIONS // 2 else ""
        for role in ("user", "assistant"):
            text = " ".join(rng.choice(WORDS) for _ in range(40)) + f" everywhere{extra}"
            db.execute("INSERT INTO messages (conversation_id, role, content, created_at) VALUES (?, ?, ?, ?)",
                       (cid, role, text, now))
    db.execute("COMMIT")
    db.close()


def timed(call) -> float:
    samples = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        call()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1000


def main() -> None:
    path = Path(tempfile.mkdtemp()) / "log.db"
    fill(path)
    log = ConversationLog(connect(path), warn=print)
    db = log._db()
    print(f"history search at {CONVERSATIONS:,} conversations ({2 * CONVERSATIONS:,} messages), median of {RUNS}:")
    for word, what in (("everywhere", "in every message"), ("rareword", "in 1 conversation of 100"),
                       ("uniqueword", "in 1 conversation")):
        assert [tuple(r) for r in log.search(word)] == [tuple(r) for r in db.execute(OLD, (f'"{word}"', 20))]
        new = timed(lambda w=word: log.search(w))
        old = timed(lambda w=word: db.execute(OLD, (f'"{w}"', 20)).fetchall())
        print(f"  {word!r:<13} {what:<26} {new:7.2f} ms   (ordered by messages.id: {old:7.2f} ms, {old / new:5.1f}×)")


if __name__ == "__main__":
    main()
