"""Two streamchats opening a new log at once: the second waits for the first, in-process."""

from __future__ import annotations

import sqlite3
import threading
import time

from streamchat.store_schema import connect


def test_opening_a_new_log_waits_while_another_process_writes_it(tmp_path):
    """test_two_concurrent_processes_both_land failed under load with "log.db is unusable
    (database is locked)": the switch to WAL got SQLITE_BUSY at once, with no busy wait, while
    the other process held the new log's write lock."""
    path = tmp_path / "log.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("CREATE TABLE first_writer(a)")  # a new log, still in rollback-journal mode
    opened: list[object] = []

    def open_log() -> None:
        try:
            connect(path).close()
            opened.append("ok")
        except sqlite3.Error as exc:
            opened.append(exc)

    thread = threading.Thread(target=open_log)
    thread.start()
    time.sleep(0.3)  # the opener meets the lock (it failed here at once)
    holder.execute("ROLLBACK")
    holder.close()
    thread.join(15)
    assert opened == ["ok"]
