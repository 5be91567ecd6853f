"""The arithmetic of rate limits and budgets, pure, so the SQLite store runs it and tests pin it
(the Redis store's Lua script does the same steps, and the same tests run against it).

Rate limits are token buckets: `rpm` N is a bucket of N requests refilled at N a minute (a burst of
N, then one every 60/N s); `tpm` is the same for tokens, charged after the answer with what the
upstream reported, so a large answer can leave the bucket in debt. Either way the wait until the
next request fits is exact: `Retry-After`.

A budget is checked before the request and settled after it: each admitted request reserves an
estimate of its cost (its prompt, and `max_tokens` of output), and a request is admitted while the
spend plus the reservations in flight plus its own estimate fit, or when nothing else is in flight
and some budget is left — so the last request may go over, by itself, never several at once.
"""

from __future__ import annotations

import time
from enum import Enum

MINUTE = 60.0


class Verdict(str, Enum):
    OK = "ok"
    UNKNOWN = "unknown"  # no such key
    REVOKED = "revoked"
    EXPIRED = "expired"
    MODEL = "model"  # the key may not use this model
    EXHAUSTED = "exhausted"  # the budget is spent
    BUSY = "busy"  # requests in flight hold what is left of the budget: ask again when they settle
    RPM = "rpm"
    TPM = "tpm"


def refill(level: float | None, at: float | None, now: float, capacity: int) -> float:
    """A bucket's level at `now`: full when never used, refilled at `capacity` a minute, never above it."""
    if level is None or at is None:
        return float(capacity)
    return min(float(capacity), level + max(0.0, now - at) * capacity / MINUTE)


def wait_for(level: float, need: float, capacity: int) -> float:
    """Seconds until a bucket at `level` holds `need`."""
    return max(0.0, need - level) * MINUTE / capacity


def take(level: float | None, at: float | None, now: float, capacity: int, amount: float) -> tuple[float, float | None]:
    """(the level after taking `amount`, None) when it is there; else (the level, seconds to wait)."""
    current = refill(level, at, now, capacity)
    if current >= amount:
        return current - amount, None
    return current, wait_for(current, amount, capacity)


def budget_verdict(budget: int | None, spent: int, reserved: int, in_flight: int, estimate: int) -> Verdict:
    if budget is None:
        return Verdict.OK
    if spent >= budget:
        return Verdict.EXHAUSTED
    if in_flight and spent + reserved + estimate > budget:
        return Verdict.BUSY
    return Verdict.OK


def period_id(period: str, now: float) -> str:
    """Which budget period `now` falls in (UTC): 2026-12-02 for day, 2026-12 for month, total."""
    if period == "day":
        return time.strftime("%Y-%m-%d", time.gmtime(now))
    if period == "month":
        return time.strftime("%Y-%m", time.gmtime(now))
    return "total"
