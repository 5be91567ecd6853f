"""Where access keys and their use live: one small interface (this module), two stores behind it
(`sqlite_state`, `redis_state`; `stores.open_state` picks one).

SQLite (the default, `access.db` in the data dir, WAL) serves one machine, `serve --workers N`
included: every admission and settlement is one `BEGIN IMMEDIATE` transaction, so the workers'
processes see one budget. Redis (`--state redis://HOST:PORT/DB`) serves several machines: each
admission and settlement is one Lua script, atomic on the server. Either way a store that cannot
be reached is `StateUnavailable`: serve answers 503, never an unmetered answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from streamchat.access.limits import Verdict
from streamchat.access.records import KeyRecord, KeyStatus, SpendEntry
from streamchat.errors import ConfigError

RESERVATION_S = 900.0  # a reservation whose request never settled (a worker killed mid-answer) lapses after this
# The spend log (`access usage`; budgets count in the key's record) keeps 62 days: a month budget's
# current month and the whole one before it, on any day. Each write drops what is older.
SPEND_LOG_KEEP_S = 62 * 86400.0


class StateUnavailable(ConfigError):
    """The store did not answer (Redis down, a locked or unreadable database)."""

    code = "state_unavailable"


@dataclass(frozen=True)
class Ask:
    """What a request asks of its key: a model (by every name it goes by) and an estimated cost."""

    models: tuple[str, ...]
    estimate: int  # nanodollars: the prompt and max_tokens of output at the model's price
    now: float
    hold_s: float = RESERVATION_S


@dataclass(frozen=True)
class Admission:
    verdict: Verdict
    name: str | None = None
    retry_after: float | None = None  # seconds, for RPM and TPM
    ticket: str | None = None  # the reservation to settle, for OK


class AccessState(Protocol):
    """The store's interface; `admit` and `settle` are each atomic across processes and machines."""

    where: str  # for messages: the file, or the URL with any password masked
    remote: bool  # across a network: serve settles off its event loop (SQLite's are in-process, ~0.1 ms)

    def create(self, record: KeyRecord, hashed: str) -> None: ...

    def revoke(self, name: str, now: float) -> None: ...

    def statuses(self, now: float) -> list[KeyStatus]: ...

    def find(self, hashed: str) -> KeyRecord | None: ...

    def admit(self, hashed: str, ask: Ask) -> Admission: ...

    def settle(self, hashed: str, ticket: str, entry: SpendEntry) -> None: ...

    async def admit_async(self, hashed: str, ask: Ask) -> Admission:
        """`admit` from serve's event loop: a remote store's round trip does not hold the loop."""
        ...

    async def settle_async(self, hashed: str, ticket: str, entry: SpendEntry) -> None:
        """`settle` from serve's event loop (a remote store's, in a task of its own)."""
        ...

    def cool(self, route: str, deployment: str, until: float) -> None:
        """A route's deployment cools down until `until` (Unix time; 0: it answered again), for every
        process on this store (`routing.SharedCooldowns`)."""
        ...

    def cooling(self, route: str) -> dict[str, float]:
        """Each of the route's deployments that any process cooled down: until when."""
        ...

    def log(self, entry: SpendEntry) -> None: ...

    def entries(self, since: float) -> list[SpendEntry]: ...

    def close(self) -> None: ...
