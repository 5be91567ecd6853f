"""A key's record: its name, limits and how it is recognised (by the sha256 of the key, never the key).

A key is 32 random bytes (`secrets`), so a plain sha256 is a sound way to store it: there is no
dictionary to search, and a stolen store gives no usable key. Money is kept as integer nanodollars,
so sums are exact in SQLite and in Redis (whose Lua numbers are doubles, exact up to 2^53 ≈ $9M).
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from dataclasses import dataclass, field

from streamchat.errors import UsageError

KEY_PREFIX = "sk-sc-"
NANO = 1_000_000_000  # nanodollars in a dollar
PERIODS = ("day", "month", "total")
# the largest limits: money and token counts stay exact integers in SQLite and in Redis's Lua doubles (2^53)
MAX_BUDGET_USD = 9_000_000
MAX_PER_MINUTE = 10**12  # --rpm, --tpm
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def looks_like_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX) and len(token) > len(KEY_PREFIX) + 16


def to_nano(usd: float) -> int:
    return round(usd * NANO)


def to_usd(nano: int) -> float:
    return nano / NANO


def usd(nano: int) -> str:
    """Dollars for `access list` and `usage`: cents from $1, else at least four decimals and two
    significant digits, so a tiny budget or spend reads $0.0006 or $0.000012, never $0.0000."""
    if nano == 0:
        return "$0"
    value = abs(nano) / NANO
    sign = "-" if nano < 0 else ""
    if round(value, 4) >= 1:
        return f"{sign}${value:.2f}"
    decimals = max(4, 1 - math.floor(math.log10(value)))
    whole, _, fraction = f"{value:.{decimals}f}".partition(".")
    return f"{sign}${whole}.{fraction[:4]}{fraction[4:].rstrip('0')}"


def exact_usd(nano: int) -> str:
    """A limit as it was set: $5, $0.25, $0.00001 (nanodollars are exact in nine decimals)."""
    whole, rest = divmod(nano, NANO)
    return f"${whole}" + (f".{rest:09d}".rstrip("0") if rest else "")


@dataclass(frozen=True)
class KeyRecord:
    """What `access create` set; `budget` in nanodollars per `period`, None: no limit."""

    name: str
    budget: int | None = None
    period: str = "total"
    rpm: int | None = None
    tpm: int | None = None
    models: tuple[str, ...] = ()
    created: float = 0.0
    expires: float | None = None
    revoked: float | None = None

    def limits_text(self) -> str:
        parts = []
        if self.budget is not None:
            parts.append(f"{exact_usd(self.budget)}/{self.period}")
        if self.rpm is not None:
            parts.append(f"{self.rpm} rpm")
        if self.tpm is not None:
            parts.append(f"{self.tpm} tpm")
        if self.models:
            parts.append("models " + ",".join(self.models))
        return " ".join(parts) or "no limits"


@dataclass(frozen=True)
class KeyStatus:
    """A record with what it has used: the current period's spend and when it was last used."""

    record: KeyRecord
    spent: int = 0
    last_used: float | None = None


@dataclass(frozen=True)
class SpendEntry:
    """One line of the spend log: a request that reached the model, or a key's refused request."""

    ts: float
    name: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost: int | None = None  # nanodollars; None: the model has no known price
    latency_ms: float = 0.0
    status: str = "ok"  # ok, or the error's code (rate_limited, insufficient_quota, server_error…)


@dataclass
class UsageRow:
    """`access usage`'s line: one key and model over the period asked."""

    name: str
    model: str
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: int = 0
    unpriced: int = 0  # requests whose model has no known price
    errors: int = 0
    statuses: dict[str, int] = field(default_factory=dict)


def usage_rows(entries: list[SpendEntry]) -> list[UsageRow]:
    """The spend log summed per key and model (both stores hand their entries here)."""
    rows: dict[tuple[str, str], UsageRow] = {}
    for entry in entries:
        row = rows.setdefault((entry.name, entry.model), UsageRow(entry.name, entry.model))
        row.requests += 1
        row.input_tokens += entry.input_tokens
        row.output_tokens += entry.output_tokens
        if entry.cost is None:
            row.unpriced += 1
        else:
            row.cost += entry.cost
        if entry.status != "ok":
            row.errors += 1
            row.statuses[entry.status] = row.statuses.get(entry.status, 0) + 1
    return sorted(rows.values(), key=lambda r: (r.name, r.model))


def usage_dict(row: UsageRow) -> dict[str, object]:
    """A usage row as `access usage --json` and `GET /v1/usage` give it."""
    return {"key": row.name, "model": row.model, "requests": row.requests, "input_tokens": row.input_tokens,
            "output_tokens": row.output_tokens, "cost_usd": to_usd(row.cost), "unpriced": row.unpriced,
            "errors": row.errors, "statuses": row.statuses}


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise UsageError(f"'{name}' is not a key name", hint="use 1–64 letters, digits, . _ @ + - (starting with a letter or digit)")
    return name


def parse_budget(text: str) -> int:
    """`--budget 5` or `$0.50` → nanodollars; anything else, or ≤ 0, is a usage error."""
    try:
        value = float(text.strip().removeprefix("$"))
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 < value <= MAX_BUDGET_USD or to_nano(value) <= 0:
        raise UsageError(f"--budget must be a positive number of dollars up to {MAX_BUDGET_USD:,}, not {text!r}",
                         hint="e.g. --budget 5 or --budget 0.25; for no limit, leave --budget out")
    return to_nano(value)


def parse_period(text: str) -> str:
    if text not in PERIODS:
        raise UsageError(f"--period must be day, month or total, not {text!r}")
    return text


def parse_expires(text: str) -> float:
    """`--expires 30d` → seconds; zero or anything not an age is a usage error (a key that never works)."""
    from streamchat.history import duration

    try:
        seconds = duration(text)
    except UsageError:
        seconds = 0
    if seconds <= 0:
        raise UsageError(f"--expires must be a positive age, not {text!r}", hint="e.g. --expires 30d, 12h or 2w")
    return seconds


def parse_models(text: str) -> tuple[str, ...]:
    models = tuple(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    if not models:
        raise UsageError("--models needs at least one model name", hint="e.g. --models openai:gpt-4o-mini,anthropic:claude-haiku-4-5")
    return models
