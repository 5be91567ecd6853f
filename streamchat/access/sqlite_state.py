"""The access store in SQLite: one file, shared by every serve process on the machine.

WAL lets readers run beside the one writer; admission and settlement each take the write lock
with `BEGIN IMMEDIATE`, so two workers cannot both read the same spend and both admit on it.
synchronous=NORMAL: a transaction survives a killed process (not a power cut), and a commit costs
no fsync — the budget's counters are updated on every request.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from streamchat.access.limits import Verdict, budget_verdict, period_id, refill, take, wait_for
from streamchat.access.records import KeyRecord, KeyStatus, SpendEntry
from streamchat.access.state import SPEND_LOG_KEEP_S, Admission, Ask, StateUnavailable
from streamchat.errors import UsageError

BUSY_S = 2.0  # a transaction takes well under a millisecond

SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    hash TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE,
    budget INTEGER, period TEXT NOT NULL, rpm INTEGER, tpm INTEGER, models TEXT NOT NULL,
    created REAL NOT NULL, expires REAL, revoked REAL,
    spent INTEGER NOT NULL DEFAULT 0, period_id TEXT,
    rpm_level REAL, rpm_at REAL, tpm_level REAL, tpm_at REAL, last_used REAL
);
CREATE TABLE IF NOT EXISTS reservations (
    ticket INTEGER PRIMARY KEY, hash TEXT NOT NULL, amount INTEGER NOT NULL, deadline REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS reservations_hash ON reservations(hash);
CREATE TABLE IF NOT EXISTS spend (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, name TEXT NOT NULL, model TEXT NOT NULL,
    input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, cost INTEGER,
    latency_ms REAL NOT NULL, status TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS spend_ts ON spend(ts);
CREATE TABLE IF NOT EXISTS cooldowns (
    route TEXT NOT NULL, deployment TEXT NOT NULL, until REAL NOT NULL, PRIMARY KEY (route, deployment)
);
"""


def _record(row: sqlite3.Row) -> KeyRecord:
    return KeyRecord(name=row["name"], budget=row["budget"], period=row["period"], rpm=row["rpm"], tpm=row["tpm"],
                     models=tuple(m for m in row["models"].split("\n") if m), created=row["created"],
                     expires=row["expires"], revoked=row["revoked"])


class SqliteState:
    """One connection per thread that uses it."""

    remote = False  # in-process: a settlement on a worker thread only contended for the write lock

    def __init__(self, path: Path) -> None:
        from streamchat.private_files import ensure_private_file

        self.where, self.path = str(path), path
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        try:
            ensure_private_file(path)  # SQLite gives -wal and -shm the database file's mode
            self.db.executescript(SCHEMA)  # idempotent; executescript commits by itself
        except (sqlite3.Error, OSError) as err:
            raise StateUnavailable(f"cannot open the access store {path}: {err}",
                                   hint="check the file and its directory, or pass --state") from None

    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            # serve admits on its event loop: a write lock held for 2 s is a fault (503), not a wait
            db = sqlite3.connect(self.path, timeout=BUSY_S, isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute(f"PRAGMA busy_timeout = {int(BUSY_S * 1000)}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            self._local.db = db
            with self._lock:
                self._opened.append(db)
        return db

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding the database's write lock from its start."""
        try:
            db = self.db
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as err:
            raise StateUnavailable(f"the access store {self.where} failed: {err}") from None

    def _read(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        try:
            return self.db.execute(sql, args).fetchall()
        except sqlite3.Error as err:
            raise StateUnavailable(f"the access store {self.where} failed: {err}") from None

    def create(self, record: KeyRecord, hashed: str) -> None:
        with self._write() as db:
            old = db.execute("SELECT revoked FROM keys WHERE name = ?", (record.name,)).fetchone()
            if old is not None and old["revoked"] is None:
                raise UsageError(f"a key named '{record.name}' exists", hint=f"revoke it first: streamchat access revoke {record.name}")
            db.execute("DELETE FROM keys WHERE name = ?", (record.name,))
            db.execute("INSERT INTO keys (hash, name, budget, period, rpm, tpm, models, created, expires)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (hashed, record.name, record.budget, record.period, record.rpm, record.tpm,
                        "\n".join(record.models), record.created, record.expires))

    def revoke(self, name: str, now: float) -> None:
        with self._write() as db:
            if db.execute("UPDATE keys SET revoked = ? WHERE name = ? AND revoked IS NULL", (now, name)).rowcount == 0:
                raise UsageError(f"no active key named '{name}'", hint="streamchat access list shows the keys")

    def statuses(self, now: float) -> list[KeyStatus]:
        return [KeyStatus(_record(row), row["spent"] if row["period_id"] == period_id(row["period"], now) else 0,
                          row["last_used"]) for row in self._read("SELECT * FROM keys ORDER BY name")]

    def find(self, hashed: str) -> KeyRecord | None:
        rows = self._read("SELECT * FROM keys WHERE hash = ?", hashed)
        return _record(rows[0]) if rows else None

    def admit(self, hashed: str, ask: Ask) -> Admission:
        now = ask.now
        with self._write() as db:  # the record and its live reservations in one statement: each one costs
            row = db.execute("SELECT *, (SELECT COUNT(*) FROM reservations r WHERE r.hash = k.hash AND r.deadline >= ?)"
                             " AS in_flight, (SELECT COALESCE(SUM(amount), 0) FROM reservations r"
                             " WHERE r.hash = k.hash AND r.deadline >= ?) AS reserved FROM keys k WHERE hash = ?",
                             (now, now, hashed)).fetchone()
            if row is None:
                return Admission(Verdict.UNKNOWN)
            record, name = _record(row), row["name"]
            if record.revoked is not None:
                return Admission(Verdict.REVOKED, name)
            if record.expires is not None and record.expires <= now:
                return Admission(Verdict.EXPIRED, name)
            if record.models and not set(ask.models) & set(record.models):
                return Admission(Verdict.MODEL, name)
            pid = period_id(record.period, now)
            spent = row["spent"] if row["period_id"] == pid else 0
            verdict = budget_verdict(record.budget, spent, row["reserved"], row["in_flight"], ask.estimate)
            if verdict is not Verdict.OK:
                return Admission(verdict, name)
            rpm_level = None
            if record.rpm is not None:
                rpm_level, wait = take(row["rpm_level"], row["rpm_at"], now, record.rpm, 1)
                if wait is not None:
                    return Admission(Verdict.RPM, name, wait)
            if record.tpm is not None:
                tokens = refill(row["tpm_level"], row["tpm_at"], now, record.tpm)
                if tokens < 1:
                    return Admission(Verdict.TPM, name, wait_for(tokens, 1, record.tpm))
            if rpm_level is not None:
                db.execute("UPDATE keys SET rpm_level = ?, rpm_at = ? WHERE hash = ?", (rpm_level, now, hashed))
            ticket = 0  # a key without a budget holds no reservation
            if record.budget is not None:
                ticket = db.execute("INSERT INTO reservations (hash, amount, deadline) VALUES (?, ?, ?)",
                                    (hashed, ask.estimate, now + ask.hold_s)).lastrowid or 0
        return Admission(Verdict.OK, name, ticket=str(ticket))

    def settle(self, hashed: str, ticket: str, entry: SpendEntry) -> None:
        with self._write() as db:
            db.execute("DELETE FROM reservations WHERE ticket = ? OR deadline < ?", (int(ticket), entry.ts))  # and lapsed ones
            row = db.execute("SELECT period, spent, period_id, tpm, tpm_level, tpm_at FROM keys WHERE hash = ?",
                             (hashed,)).fetchone()
            if row is not None:
                pid = period_id(row["period"], entry.ts)
                spent = (row["spent"] if row["period_id"] == pid else 0) + (entry.cost or 0)
                tpm_level = row["tpm_level"]
                if row["tpm"] is not None:
                    tpm_level = refill(tpm_level, row["tpm_at"], entry.ts, row["tpm"]) - entry.input_tokens - entry.output_tokens
                db.execute("UPDATE keys SET spent = ?, period_id = ?, tpm_level = ?, tpm_at = ?, last_used = ? WHERE hash = ?",
                           (spent, pid, tpm_level, entry.ts, entry.ts, hashed))
            self._insert(db, entry)

    async def admit_async(self, hashed: str, ask: Ask) -> Admission:
        return self.admit(hashed, ask)  # in-process, ~0.1 ms: a thread hop would cost as much

    async def settle_async(self, hashed: str, ticket: str, entry: SpendEntry) -> None:
        self.settle(hashed, ticket, entry)

    def cool(self, route: str, deployment: str, until: float) -> None:
        with self._write() as db:
            db.execute("INSERT INTO cooldowns (route, deployment, until) VALUES (?, ?, ?)"
                       " ON CONFLICT (route, deployment) DO UPDATE SET until = excluded.until", (route, deployment, until))

    def cooling(self, route: str) -> dict[str, float]:
        return {row["deployment"]: row["until"] for row in self._read("SELECT deployment, until FROM cooldowns WHERE route = ?", route)}

    def log(self, entry: SpendEntry) -> None:
        with self._write() as db:
            self._insert(db, entry)

    @staticmethod
    def _insert(db: sqlite3.Connection, e: SpendEntry) -> None:
        """A line of the spend log, and the lines past SPEND_LOG_KEEP_S gone (on spend_ts: none, mostly)."""
        db.execute("DELETE FROM spend WHERE ts < ?", (e.ts - SPEND_LOG_KEEP_S,))
        db.execute("INSERT INTO spend (ts, name, model, input_tokens, output_tokens, cost, latency_ms, status)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (e.ts, e.name, e.model, e.input_tokens, e.output_tokens, e.cost, e.latency_ms, e.status))

    def entries(self, since: float) -> list[SpendEntry]:
        return [SpendEntry(r["ts"], r["name"], r["model"], r["input_tokens"], r["output_tokens"], r["cost"],
                           r["latency_ms"], r["status"])
                for r in self._read("SELECT * FROM spend WHERE ts >= ? ORDER BY ts", since)]

    def close(self) -> None:
        with self._lock:
            for db in self._opened:
                db.close()
            self._opened.clear()
